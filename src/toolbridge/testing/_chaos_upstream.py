"""A chaos upstream: a real HTTP API with its own OpenAPI document, Stripe-style idempotency keys, effect
counters and seeded faults of every kind — run it as a process of its own::

    python -m toolbridge.testing._chaos_upstream --port 8900 --rate 0.3 --seed 1

``POST /items {"op": …}`` applies one effect per ``op`` (counted), once per ``Idempotency-Key``: a key
seen before answers its first answer again. ``GET /items/{id}`` reads. ``GET /_effects`` (never faulty)
reports the effects per op, the faults injected per kind and the requests served. With probability
``rate`` a request meets one fault, drawn with the weights of :data:`FAULTS`:

| fault | when | what the client sees |
|---|---|---|
| ``503``, ``429`` (``Retry-After: 1``) | before the effect | the status |
| ``reset_before`` | before the effect | the connection closes, no answer |
| ``500`` | after the effect | the status |
| ``reset_after`` | after the effect | the connection closes, no answer |
| ``truncated`` | after the effect | half the body, then the connection closes |
| ``hang`` | after the effect | nothing for ``hang`` seconds, then the connection closes |
| ``trickle`` | after the effect | the whole answer, a few bytes at a time |
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from typing import Any

import anyio
from anyio.abc import SocketStream

from toolbridge.testing._upstream import _read_request

__all__ = ["DOCUMENT", "FAULTS", "ChaosUpstream", "main"]

FAULTS: dict[str, float] = {
    "503": 0.08,
    "429": 0.04,
    "reset_before": 0.06,
    "reset_after": 0.06,
    "500": 0.02,
    "truncated": 0.02,
    "hang": 0.01,
    "trickle": 0.01,
}
"""Relative weights (they add up to 0.30: at ``rate`` 0.3 each fault has exactly this probability)."""
_BEFORE = frozenset({"503", "429", "reset_before"})

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "chaos upstream", "version": "1"},
    "paths": {
        "/items": {
            "post": {
                "operationId": "createItem",
                "summary": "Create an item (one effect per op, once per Idempotency-Key)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["op"],
                                "properties": {"op": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "created"}},
            }
        },
        "/items/{id}": {
            "get": {
                "operationId": "getItem",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the item"}},
            }
        },
    },
}


class ChaosUpstream:
    def __init__(self, *, rate: float, seed: int, hang: float = 60.0) -> None:
        self._rate = rate
        self._rng = random.Random(seed)
        self._hang = hang
        self.effects: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._answers: dict[str, bytes] = {}

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                while await self._one(stream):
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ValueError):
                return

    def _draw(self) -> str | None:
        roll = self._rng.random()
        if roll >= self._rate:
            return None
        roll *= sum(FAULTS.values()) / self._rate
        for kind, weight in FAULTS.items():
            if roll < weight:
                return kind
            roll -= weight
        return None

    async def _one(self, stream: SocketStream) -> bool:
        method, path, headers, body = await _read_request(stream)
        if path == "/_effects":
            report = {"effects": self.effects, "faults": self.faults, "requests": self.requests}
            await stream.send(_response(200, json.dumps(report).encode()))
            return True
        self.requests += 1
        fault = self._draw()
        if fault is not None:
            self.faults[fault] += 1
        if fault in _BEFORE:
            return await _refuse(stream, fault)
        answer = self._apply(method, path, headers, body)
        return await self._answer(stream, fault, answer)

    def _apply(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        if method != "POST":
            return json.dumps({"id": path.rsplit("/", 1)[-1], "read": True}).encode()
        key = headers.get("idempotency-key")
        if key is not None and key in self._answers:
            return self._answers[key]  # the same key: the first answer, no second effect
        op = str(json.loads(body or b"{}").get("op", ""))
        self.effects[op] += 1
        answer = json.dumps({"id": sum(self.effects.values()), "op": op}).encode()
        if key is not None:
            self._answers[key] = answer
        return answer

    async def _answer(self, stream: SocketStream, fault: str | None, answer: bytes) -> bool:
        if fault == "reset_after":
            return False
        if fault == "hang":
            await anyio.sleep(self._hang)
            return False
        if fault == "500":
            await stream.send(_response(500, b'{"error": "internal"}'))
            return True
        data = _response(200, answer)
        if fault == "truncated":
            await stream.send(data[: len(data) - len(answer) // 2 - 1])
            return False
        if fault == "trickle":
            for i in range(0, len(data), 16):
                await stream.send(data[i : i + 16])
                await anyio.sleep(0.02)
            return True
        await stream.send(data)
        return True


async def _refuse(stream: SocketStream, fault: str) -> bool:
    if fault == "reset_before":
        return False
    extra = {"retry-after": "1"} if fault == "429" else {}
    await stream.send(_response(int(fault), b'{"error": "try later"}', extra))
    return True


def _response(status: int, payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}", "content-type: application/json"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def serve(port: int, upstream: ChaosUpstream) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    await listener.serve(upstream.handle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A chaos upstream on 127.0.0.1 (toolbridge test kit)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang", type=float, default=60.0)
    args = parser.parse_args(argv)
    upstream = ChaosUpstream(rate=args.rate, seed=args.seed, hang=args.hang)
    anyio.run(serve, args.port, upstream)


if __name__ == "__main__":
    main()
