"""The load side of the benchmark: minimal clients, the two load shapes, and their statistics.

A *target* hands out clients; a client is an async context manager yielding ``call``, an awaitable that
makes one tool call and raises if it did not succeed. The HTTP clients are deliberately thin: one
keep-alive connection, request bodies prepared as bytes, the response checked by status only (its body
is checked once, on the first call), so that what is measured is the server.

Two connection kinds carry them (``--client``): ``httpx2`` (an ``httpx2.AsyncClient`` limited to one
connection) and ``raw`` (HTTP/1.1 written straight onto an asyncio stream, for when the httpx2 client's
own CPU cost would hide the server's).

``measure_all`` runs a benchmark's targets (``Entry``) through both shapes in rounds interleaved across the
targets, each step bounded so that one failing target fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx2

from _procs import Server
from _profile import record, summarize

Call = Callable[[], Awaitable[None]]

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_META_CLIENT = "io.modelcontextprotocol/clientInfo"
_CLIENT_INFO = {"name": "toolbridge-bench", "version": "0"}
_ACCEPT = "application/json, text/event-stream"
_TIMEOUT = 10.0


class BenchError(Exception):
    """A call the benchmark made did not succeed; the message says which and what came back."""


# -- connections ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


Send = Callable[[bytes], Awaitable[Reply]]


class Connection(Protocol):
    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> Send:
        """A function sending one request with these fixed headers and the given body."""
        ...


class Httpx2Connection:
    """An ``httpx2.AsyncClient`` held to one keep-alive connection; proxies from the environment ignored."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[Httpx2Connection]:
        limits = httpx2.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60)
        async with httpx2.AsyncClient(limits=limits, timeout=_TIMEOUT, trust_env=False) as client:
            yield cls(client)

    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> Send:
        client, fixed = self._client, dict(headers)

        async def send(body: bytes) -> Reply:
            response = await client.request(method, url, content=body, headers=fixed)
            return Reply(response.status_code, response.headers, response.content)

        return send


class RawConnection:
    """HTTP/1.1 over one asyncio stream: the request head is built once, responses parsed minimally."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str) -> None:
        self._reader, self._writer, self._authority = reader, writer, authority
        self._lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, base_url: str) -> AsyncIterator[RawConnection]:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _TIMEOUT)
        try:
            yield cls(reader, writer, f"{host}:{port}")
        finally:
            writer.close()
            with anyio.move_on_after(2), contextlib.suppress(ConnectionError):  # a reset at close is fine
                await writer.wait_closed()

    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> Send:
        parts = urlsplit(url)
        lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"host: {self._authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")

        async def send(body: bytes) -> Reply:
            async with self._lock:
                self._writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                return await asyncio.wait_for(self._read_reply(), _TIMEOUT)

        return send

    async def _read_reply(self) -> Reply:
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = b""
        return Reply(int(status_line.split(" ", 2)[1]), headers, body)

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])


Connect = Callable[[str], AbstractAsyncContextManager[Connection]]


def connector(kind: str) -> Connect:
    """``--client`` name → a function opening one connection to a base URL."""
    if kind == "httpx2":
        return lambda _base_url: Httpx2Connection.open()
    if kind == "raw":
        return RawConnection.open
    raise ValueError(f"unknown client kind {kind!r}; choose 'httpx2' or 'raw'")


def _text(reply: Reply) -> str:
    text = reply.body.decode(errors="replace")
    if text.startswith(("event:", "data:", "id:")):  # an SSE stream
        # its (one) message; servers may send an empty priming event first
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and line[5:].strip())
    return text


def _check(reply: Reply, what: str, *, status: int = 200) -> None:
    if reply.status != status:
        raise BenchError(f"{what}: HTTP {reply.status}: {_text(reply)[:300]}")


def _check_result(reply: Reply, what: str) -> None:
    """The first call's body must be a success (a JSON-RPC result without isError, or a REST result)."""
    _check(reply, what)
    text = _text(reply)
    body = json.loads(text)
    result = body.get("result") if isinstance(body, dict) else None
    if result is None or (isinstance(result, dict) and result.get("isError")):
        raise BenchError(f"{what}: the call did not succeed: {text[:300]}")


def _caller(send: Send, body: Callable[[int], bytes], what: str) -> Call:
    counter = iter(range(1, 1 << 62))
    checked = False

    async def call() -> None:
        nonlocal checked
        reply = await send(body(next(counter)))
        if not checked:
            _check_result(reply, what)
            checked = True
        elif reply.status != 200:
            _check(reply, what)

    return call


# -- targets -------------------------------------------------------------------------------------------


class Target(Protocol):
    @property
    def name(self) -> str: ...

    def client(self) -> AbstractAsyncContextManager[Call]: ...


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


@dataclass(frozen=True)
class RestTarget:
    """``POST /v1/tools/{tool}/call`` with ``{"arguments": {}}``."""

    name: str
    base_url: str
    key: str
    tool: str
    connect: Connect

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        headers = {"content-type": "application/json", **_auth(self.key)}
        url = f"{self.base_url}/v1/tools/{self.tool}/call"
        payload = b'{"arguments":{}}'
        async with self.connect(self.base_url) as conn:
            yield _caller(conn.prepare("POST", url, headers), lambda _i: payload, self.name)


def _tools_call(
    tool: str, meta: dict[str, Any] | None, arguments: Mapping[str, Any] | None = None
) -> Callable[[int], bytes]:
    params: dict[str, Any] = {"name": tool, "arguments": dict(arguments or {})}
    if meta is not None:
        params["_meta"] = meta
    body = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params}
    template = json.dumps(body, separators=(",", ":")).replace('"id":0', '"id":%d', 1).encode()
    return lambda i: template % i


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class ModernMcpTarget:
    """MCP ``tools/call`` in the 2026-07-28 era: one self-contained POST, no session."""

    name: str
    url: str
    key: str | None
    tool: str
    connect: Connect
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        headers = {
            "content-type": "application/json",
            "accept": _ACCEPT,
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": self.tool,
            **_auth(self.key),
        }
        meta = {_META_VERSION: MODERN, _META_CAPABILITIES: {}, _META_CLIENT: _CLIENT_INFO}
        body = _tools_call(self.tool, meta, self.arguments)
        async with self.connect(_base(self.url)) as conn:
            yield _caller(conn.prepare("POST", self.url, headers), body, self.name)


@dataclass(frozen=True)
class HandshakeMcpTarget:
    """MCP ``tools/call`` in the 2025-11-25 era: ``initialize`` once, then calls on that session id."""

    name: str
    url: str
    key: str | None
    tool: str
    connect: Connect
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        headers = {"content-type": "application/json", "accept": _ACCEPT, **_auth(self.key)}
        async with self.connect(_base(self.url)) as conn:
            session = await self._initialize(conn, headers)
            headers = {**headers, "mcp-protocol-version": HANDSHAKE}
            if session:
                headers["mcp-session-id"] = session
            note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
            _check(
                await conn.prepare("POST", self.url, headers)(note), f"{self.name} initialized", status=202
            )
            try:
                yield _caller(
                    conn.prepare("POST", self.url, headers),
                    _tools_call(self.tool, None, self.arguments),
                    self.name,
                )
            finally:
                if session:
                    await _end_session(conn.prepare("DELETE", self.url, headers), self.name)

    async def _initialize(self, conn: Connection, headers: dict[str, str]) -> str | None:
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": _CLIENT_INFO},
        }
        reply = await conn.prepare("POST", self.url, headers)(json.dumps(body).encode())
        _check(reply, f"{self.name} initialize")
        return reply.headers.get("mcp-session-id")


async def _end_session(delete: Send, what: str) -> None:
    """Best-effort session DELETE at teardown: a server that closes the connection instead of answering
    (or has already closed it) does not make the measurement fail; it is reported on stderr."""
    with anyio.move_on_after(5):
        try:
            await delete(b"")
        except (asyncio.IncompleteReadError, ConnectionError, httpx2.TransportError) as exc:
            print(f"{what}: session DELETE not answered ({type(exc).__name__}); ignored", file=sys.stderr)


@dataclass(frozen=True)
class SdkMcpTarget:
    """The same MCP call made with the official ``mcp`` client (``mcp.Client`` → ``ClientSession``)."""

    name: str
    url: str
    key: str
    tool: str
    mode: str  # "legacy" (initialize handshake) or a modern version, e.g. "2026-07-28"

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2)
        http = httpx2.AsyncClient(headers=_auth(self.key), timeout=_TIMEOUT, trust_env=False, limits=limits)
        async with (
            http,
            Client(
                streamable_http_client(self.url, http_client=http),
                mode=self.mode,
                read_timeout_seconds=_TIMEOUT,
            ) as mcp,
        ):
            checked = False

            async def call() -> None:
                nonlocal checked
                result = await mcp.call_tool(self.tool, {})
                if not checked and result.is_error:
                    raise BenchError(f"{self.name}: the call did not succeed: {result}")
                checked = True

            yield call


@dataclass(frozen=True)
class InProcessTarget:
    """``hub.call`` in this process: no HTTP, no serialization."""

    name: str
    call_once: Call

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        yield self.call_once


# -- load shapes ---------------------------------------------------------------------------------------

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal, in /proc/stat's "cpu" line
_TICKS = os.sysconf("SC_CLK_TCK")

ServerCpu = Callable[[], float] | None
"""Reads the CPU seconds the server process has used; None when the server is this process."""


def _machine_busy() -> float:
    """CPU seconds all processes on the machine have used (every core, 10 ms resolution)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return sum(int(fields[i]) for i in _BUSY_FIELDS) / _TICKS


@dataclass(frozen=True)
class Usage:
    """CPU seconds used while a load ran, by the server, this (client) process, and the whole machine."""

    server: float
    client: float
    machine: float

    @classmethod
    def now(cls, server_cpu: ServerCpu) -> Usage:
        if server_cpu is None:  # the server is this process
            return cls(time.process_time(), 0.0, _machine_busy())
        return cls(server_cpu(), time.process_time(), _machine_busy())

    def since(self, start: Usage) -> Usage:
        return Usage(self.server - start.server, self.client - start.client, self.machine - start.machine)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.server + other.server, self.client + other.client, self.machine + other.machine)


@dataclass(frozen=True)
class Run:
    """One measured stretch of load: each call's latency, the stretch's wall time and CPU use."""

    samples_ns: list[int]
    seconds: float
    usage: Usage


@dataclass(frozen=True)
class Latency:
    calls: int
    seconds: float
    median_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_us_per_call: float
    server_share: float
    client_share: float
    other_share: float
    """CPU used by every other process on the machine meanwhile, in cores (2 cores: up to 200%)."""

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    @classmethod
    def of(cls, runs: list[Run]) -> Latency:
        ordered = sorted(sample for run in runs for sample in run.samples_ns)
        seconds = sum(run.seconds for run in runs)
        usage = sum((run.usage for run in runs), Usage(0.0, 0.0, 0.0))
        n = len(ordered)
        median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
        p99 = ordered[max(0, math.ceil(0.99 * n) - 1)]
        other = max(0.0, usage.machine - usage.server - usage.client)
        return cls(
            n,
            seconds,
            median / 1e6,
            p99 / 1e6,
            sum(ordered) / n / 1e6,
            usage.server / n * 1e6,
            usage.server / seconds,
            usage.client / seconds,
            other / seconds,
        )


async def sequential(call: Call, *, calls: int, server_cpu: ServerCpu) -> Run:
    """``calls`` calls one after another through an open client's ``call``."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    began, usage = clock(), Usage.now(server_cpu)
    for _ in range(calls):
        start = clock()
        await call()
        samples.append(clock() - start)
    return Run(samples, (clock() - began) / 1e9, Usage.now(server_cpu).since(usage))


async def concurrent(
    target: Target, *, clients: int, calls_each: int, warmup: int, server_cpu: ServerCpu
) -> Run:
    """``clients`` clients, each on its own connection, each making ``calls_each`` calls back to back.

    Every client connects and warms up first; the clock starts when all are ready and stops when the
    last one has made its last call.
    """
    clock = time.perf_counter_ns
    samples: list[int] = []
    ready = done = ended = 0
    used: Usage | None = None
    all_ready, go = anyio.Event(), anyio.Event()

    async def worker() -> None:
        nonlocal ready, done, ended, used
        async with target.client() as call:
            for _ in range(warmup):
                await call()
            ready += 1
            if ready == clients:
                all_ready.set()
            await go.wait()
            for _ in range(calls_each):
                start = clock()
                await call()
                samples.append(clock() - start)
            done += 1
            if done == clients:  # before the clients close their connections
                ended, used = clock(), Usage.now(server_cpu).since(usage)

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(worker)
        await all_ready.wait()
        began, usage = clock(), Usage.now(server_cpu)
        go.set()
    assert used is not None
    return Run(samples, (ended - began) / 1e9, used)


# -- one benchmark run: targets measured in interleaved rounds -----------------------------------------

STEP_TIMEOUT = 120.0
"""Seconds one step (a warm-up, a round of one target) may take before that target is failed."""


class LoadPlan(Protocol):
    """What ``measure_all`` needs of a benchmark's plan (each script has its own dataclass)."""

    @property
    def calls(self) -> int: ...
    @property
    def warmup(self) -> int: ...
    @property
    def rounds(self) -> int: ...
    @property
    def clients(self) -> int: ...
    @property
    def calls_each(self) -> int: ...
    @property
    def warmup_each(self) -> int: ...
    @property
    def concurrent_rounds(self) -> int: ...
    @property
    def profile(self) -> Path | None: ...


@dataclass
class Entry:
    """One target under test: its server (None in-process), its load target, and what it measured."""

    PROFILE_TOP: ClassVar[int] = 25
    """How many frames the ``--profile`` summary of this target lists."""

    name: str
    server: Server | None = None
    target: Target | None = None
    call: Call | None = None  # the sequential client, open for the whole run
    sequential: list[Run] = field(default_factory=list)
    concurrent: list[Run] = field(default_factory=list)
    error: str | None = None

    @property
    def live(self) -> bool:
        return self.error is None

    @property
    def server_cpu(self) -> ServerCpu:
        return None if self.server is None else self.server.cpu_seconds

    @property
    def profiled(self) -> bool:
        """Whether ``--profile`` samples this target's server (there is none in-process)."""
        return self.server is not None

    def fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exception(exc)

    async def open_client(self, plan: LoadPlan, stack: AsyncExitStack) -> None:
        """Open the sequential client, kept open on ``stack``, and warm it up."""
        assert self.target is not None
        self.call = await stack.enter_async_context(self.target.client())
        for _ in range(plan.warmup):
            await self.call()

    async def sequential_round(self, calls: int) -> None:
        assert self.call is not None
        self.sequential.append(await sequential(self.call, calls=calls, server_cpu=self.server_cpu))

    async def concurrent_round(self, plan: LoadPlan, calls_each: int) -> None:
        assert self.target is not None
        with profiling(self, plan.profile):
            run = await concurrent(
                self.target,
                clients=plan.clients,
                calls_each=calls_each,
                warmup=plan.warmup_each,
                server_cpu=self.server_cpu,
            )
        self.concurrent.append(run)


E = TypeVar("E", bound=Entry)


@contextmanager
def profiling(entry: Entry, profile: Path | None) -> Iterator[None]:
    """With ``--profile DIR``, py-spy samples ``entry``'s server while the block runs.

    Each block's stacks are appended to DIR/<target>.txt (collapsed stacks add up) and the summary of
    all of them so far is rewritten to DIR/<target>.summary.txt.
    """
    if profile is None or entry.server is None or not entry.profiled:
        yield
        return
    profile.mkdir(parents=True, exist_ok=True)
    part, stacks = profile / f"{entry.name}.part.txt", profile / f"{entry.name}.txt"
    with record(entry.server.pid, part):
        yield
    with stacks.open("a") as out:
        out.write(part.read_text())
    part.unlink()
    (profile / f"{entry.name}.summary.txt").write_text(summarize(stacks, top=entry.PROFILE_TOP) + "\n")


async def step(entry: Entry, make: Callable[[], Awaitable[None]], *, scoped: bool = True) -> None:
    """Run one step for ``entry`` under STEP_TIMEOUT; a failure fails that target only.

    A step that enters a context kept open after it (a client, the hub) cannot run inside a cancel scope
    it outlives: ``scoped=False`` leaves the bound to the per-request timeouts of the clients.
    """
    if not entry.live:
        return
    try:
        if scoped:
            with anyio.fail_after(STEP_TIMEOUT):
                await make()
        else:
            await make()
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' numbers
        entry.fail(exc)


async def measure_all(
    entries: list[E], plan: LoadPlan, enter_hub: Callable[[E, AsyncExitStack], Awaitable[None]]
) -> None:
    """Measure every live entry: sequential rounds that visit every target in turn, then concurrent ones.

    ``enter_hub`` sets up the ``inprocess`` entry's target (a hub kept open on the stack it is given).
    """
    async with AsyncExitStack() as stack:
        for entry in entries:
            if entry.name == "inprocess":
                await step(entry, functools.partial(enter_hub, entry, stack), scoped=False)
        for entry in entries:
            await step(entry, functools.partial(entry.open_client, plan, stack), scoped=False)
        per_round = max(1, plan.calls // plan.rounds)
        for _ in range(plan.rounds):
            for entry in entries:
                await step(entry, functools.partial(entry.sequential_round, per_round))
        if plan.profile is not None:
            for entry in entries:
                (plan.profile / f"{entry.name}.txt").unlink(missing_ok=True)
        each = max(1, plan.calls_each // plan.concurrent_rounds)
        for _ in range(plan.concurrent_rounds):
            for entry in entries:
                await step(entry, functools.partial(entry.concurrent_round, plan, each))
