"""A local MCP server as a subprocess: newline-delimited JSON-RPC over its stdin and stdout.

The process gets a clean environment: the configured ``env`` plus a few variables a program needs to
run at all (:data:`INHERITED`). Its stderr is kept (the last lines) to explain an exit, and logged at DEBUG,
with the secrets given to it masked (as what it writes on stdout that is not JSON). It runs in a
process group of its own, which is terminated when the channel closes (as the SDK's stdio client does),
so processes the server started do not outlive it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence

import anyio
import anyio.abc
import httpx2
from anyio.streams.text import TextReceiveStream
from mcp.os.posix.utilities import terminate_posix_process_tree

from toolbridge import _jsonin as jsonin
from toolbridge._redact import redact_text
from toolbridge.connectors.mcp._channel import Message, OnMessage
from toolbridge.connectors.mcp._config import StdioServer
from toolbridge.errors import ConfigurationError, UpstreamUnavailable

__all__ = ["INHERITED", "StdioChannel"]

logger = logging.getLogger("toolbridge.connectors.mcp")

INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER", "LOGNAME", "SHELL", "TERM")
"""Variables of toolbridge's own environment an upstream process inherits (nothing else leaks)."""

_MAX_LINE = 64 * 1024 * 1024
_STDERR_LINES = 20
_EXIT_TIMEOUT = 2.0
"""Seconds a server gets to exit once its stdin is closed, and again after SIGTERM before SIGKILL."""
_EXIT_POLL = 0.01


class _Pending:
    __slots__ = ("done", "response")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.response: Message | None = None


class StdioChannel:
    def __init__(
        self,
        server: StdioServer,
        task_group: anyio.abc.TaskGroup,
        on_message: OnMessage,
        *,
        secrets: Sequence[str] = (),
    ) -> None:
        """``secrets``: the forms of the secrets in its environment, masked in what it writes but JSON-RPC."""
        self._server = server
        self._secrets = secrets
        self._tg = task_group
        self._on_message = on_message
        self._process: anyio.abc.Process | None = None
        self._pending: dict[int | str, _Pending] = {}
        self._write_lock = anyio.Lock()
        self._alive = False
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._exited = anyio.Event()

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def describe(self) -> str:
        return f"the stdio server {os.path.basename(self._server.command)!r}"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in INHERITED}
        env.update(self._server.env)
        try:
            self._process = await anyio.open_process(  # its own process group: closed with its children
                [self._server.command, *self._server.args],
                env=env,
                cwd=self._server.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigurationError(
                f"cannot start {self.describe}: {exc.strerror or exc}",
                hint="check the connector's command (is it installed and on PATH?) and its cwd",
            ) from exc
        self._alive = True
        self._tg.start_soon(self._read_stdout, self._process)
        self._tg.start_soon(self._read_stderr, self._process)

    async def aclose(self) -> None:
        process, self._process = self._process, None
        self._fail_pending()
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()  # the MCP way to ask a stdio server to stop
            with anyio.move_on_after(_EXIT_TIMEOUT):
                await _exited(process)
            # then its whole process group (the SDK's termination: SIGTERM, SIGKILL after the timeout),
            # so that what the server started does not outlive it, even when the server itself exited
            await terminate_posix_process_tree(process, _EXIT_TIMEOUT)
            with anyio.move_on_after(_EXIT_TIMEOUT):
                await process.wait()

    def forget_session(self) -> None:
        return None  # a process is its own session

    async def request(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> Message:
        pending = _Pending()
        self._pending[message["id"]] = pending
        try:
            await self._write(message)
            await pending.done.wait()
        finally:
            self._pending.pop(message["id"], None)
        if pending.response is None:
            raise UpstreamUnavailable(
                f"{self.describe} exited while handling the request{self._exit_detail()}",
                sent=True,
                hint="toolbridge restarts it for the next call; check the result before repeating a write",
            )
        return pending.response

    async def notify(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> None:
        await self._write(message)

    async def _write(self, message: Message) -> None:
        process = self._process
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n"
        if not self._alive or process is None or process.stdin is None:
            raise UpstreamUnavailable(f"{self.describe} is not running{self._exit_detail()}", sent=False)
        try:
            async with self._write_lock:
                await process.stdin.send(line.encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._alive = False
            raise UpstreamUnavailable(
                f"{self.describe} stopped reading its input{self._exit_detail()}", sent=False
            ) from exc

    async def _read_stdout(self, process: anyio.abc.Process) -> None:
        assert process.stdout is not None
        try:
            async for line in stdout_lines(process.stdout, self.describe):
                await self._dispatch(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if process is self._process:
                self._alive = False
                self._fail_pending()
                self._tg.start_soon(self._reap, process)

    async def _reap(self, process: anyio.abc.Process) -> None:
        with anyio.move_on_after(5):
            await process.wait()
            return
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile (uvloop raises, asyncio not)
            process.kill()

    async def _read_stderr(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        try:
            async for text in TextReceiveStream(process.stderr, errors="replace"):
                for line in text.splitlines():
                    if line.strip():
                        line = redact_text(line, self._secrets)[:500]  # masked before it is cut short
                        self._stderr.append(line)
                        logger.debug("%s: %s", self.describe, line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    async def _dispatch(self, line: bytes) -> None:
        try:
            message = jsonin.loads(line)  # json.loads: RecursionError, ending the reader
        except ValueError:
            text = redact_text(line.decode("utf-8", "replace"), self._secrets)
            logger.debug("%s wrote a line that is not JSON: %.200r", self.describe, text)
            return
        if not isinstance(message, dict):
            return
        if "method" not in message:
            pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if pending is not None:
                pending.response = message
                pending.done.set()
            return
        if "id" in message:  # a request may wait for an agent's answer: never in the reader
            self._tg.start_soon(self._answer, message)
        else:
            await self._on_message(message)

    async def _answer(self, request: Message) -> None:
        reply = await self._on_message(request)
        if reply is not None:
            with contextlib.suppress(UpstreamUnavailable):
                await self._write({"jsonrpc": "2.0", "id": request["id"], **reply})

    def _fail_pending(self) -> None:
        for pending in list(self._pending.values()):
            pending.done.set()

    def _exit_detail(self) -> str:
        process = self._process
        code = process.returncode if process is not None else None
        detail = f" (exit code {code})" if code is not None else ""
        if self._stderr:
            detail += f"; its last output: {' | '.join(list(self._stderr)[-3:])}"
        return detail


async def _exited(process: anyio.abc.Process) -> None:
    """Return once the process exited (its return code polled, not ``wait()``: on asyncio that also
    waits for its pipes, which a child that inherited them keeps open)."""
    while process.returncode is None:  # noqa: ASYNC110 - no event tells of an exit without wait()
        await anyio.sleep(_EXIT_POLL)


async def stdout_lines(chunks: AsyncIterable[bytes], describe: str) -> AsyncIterator[bytes]:
    """The non-blank lines of what a server writes, as they end; a line over ``_MAX_LINE`` bytes ends them.

    The unfinished line is appended to and split only when a chunk ends a line: splitting the whole
    buffer again for every chunk made a long line quadratic to read (30 MB: 15 s)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if b"\n" in chunk:
            *lines, rest = buffer.split(b"\n")
            buffer = bytearray(rest)
            for line in lines:
                if line.strip():
                    yield bytes(line)
        if len(buffer) > _MAX_LINE:
            logger.warning("%s sent a line over %d bytes; stopping it", describe, _MAX_LINE)
            return
