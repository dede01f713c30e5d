"""``toolbridge.Client``: the Python way to call a remote toolbridge over its REST API.

    async with Client("http://127.0.0.1:8080", api_key="tb_...") as client:
        tools = await client.list_tools()
        found = await client.search_tools("add a note")
        result = await client.call("notes.add", {"text": "hello"})

Errors come back as the same exception classes the hub raises (``ToolNotFound``, ``InvalidArguments``…).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx2

from toolbridge import errors
from toolbridge._httpclient import closing_transport
from toolbridge._shape import CallResult
from toolbridge.catalog import Tool, ToolAnnotations

__all__ = ["Client"]


class Client:
    """A remote hub.

    Pass ``http_client`` to share a pool or a transport; the client closes only what it made.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        http_client: httpx2.AsyncClient | None = None,
        timeout: float = 90.0,
    ) -> None:
        self._base = base_url.rstrip("/") + "/v1"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._owns_client = http_client is None
        self._http = http_client or httpx2.AsyncClient(
            transport=closing_transport(), timeout=timeout, trust_env=False
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def list_tools(self) -> list[Tool]:
        data = await self._request("GET", "/tools")
        return [_tool(doc) for doc in data["tools"]]

    async def search_tools(
        self,
        query: str,
        *,
        limit: int = 10,
        connector: str | None = None,
        read_only: bool | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The tools best matching ``query``, as ``GET /v1/tools?q=`` answers: ``tools`` (name, summary,
        score, read_only), best first, and ``good_match: false`` with a ``hint`` and the ``connectors``
        when none matches well; ``read_as`` when misspelt words were read as others."""
        params: dict[str, str | int | list[str]] = {"q": query, "limit": limit}
        if tags:
            params["tags"] = list(tags)
        if connector is not None:
            params["connector"] = connector
        if read_only is not None:
            params["read_only"] = "true" if read_only else "false"
        return dict(await self._request("GET", "/tools", params=params))

    async def get_tool(self, name: str) -> Tool:
        return _tool(await self._request("GET", f"/tools/{name}"))

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CallResult:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = await self._request(
            "POST", f"/tools/{tool}/call", json={"arguments": dict(arguments or {})}, headers=headers
        )
        truncated = bool(data["truncated"])
        value = None if truncated else data.get("result")
        text = data["text"] if truncated else _text(value)
        return CallResult(
            data["tool"],
            value,
            text,
            truncated,
            int(data["size"]),
            data["request_id"],
            float(data["duration_ms"]),
        )

    async def health(self) -> list[dict[str, Any]]:
        """Breaker, retry and rate-limit state per connector, as the server sees it."""
        return list((await self._request("GET", "/health/connectors"))["connectors"])

    async def calls(self, *, limit: int = 50, tool: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": limit, **({"tool": tool} if tool else {})}
        data = await self._request("GET", "/calls", params=params)
        return list(data["calls"])

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            response = await self._http.request(method, self._base + path, headers=headers, **kwargs)
        except httpx2.TransportError as exc:
            raise errors.UpstreamError(
                f"cannot reach toolbridge at {self._base}: {type(exc).__name__}: {exc}",
                hint="check that the server is running ('toolbridge serve') and the URL",
            ) from exc
        if response.is_success:
            return response.json()
        raise _error(response)


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _tool(doc: Mapping[str, Any]) -> Tool:
    a = doc.get("annotations", {})
    return Tool(
        name=doc["name"],
        connector=doc["connector"],
        description=doc.get("description", ""),
        input_schema=doc["input_schema"],
        title=doc.get("title"),
        output_schema=doc.get("output_schema"),
        cost=int(doc.get("cost", 1)),
        tags=tuple(doc.get("tags", ())),
        annotations=ToolAnnotations(
            read_only=bool(a.get("read_only")),
            destructive=bool(a.get("destructive")),
            idempotent=bool(a.get("idempotent")),
            open_world=bool(a.get("open_world", True)),
        ),
    )


def _error(response: httpx2.Response) -> errors.ToolbridgeError:
    try:
        doc = response.json()
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    doc.setdefault("detail", f"HTTP {response.status_code} from {response.request.url}")
    return errors.from_problem(doc, status=response.status_code)
