"""One refresh at a time per connection, which no caller's deadline cuts short, and its failure remembered.

A refresh runs as a *flight* in a task of its own (the credential manager's task group), bounded by its own
timeouts (``token_timeout``); every caller of the connection joins the flight under way and waits for it
no longer than its own call's deadline. A caller that gives up does not cancel it: a rotating refresh
token that was sent may already be spent at the provider, and only the answer that is still coming holds
its successor (abandoned with the first caller, it left a reconnect behind whenever the token endpoint was
slower than a call's deadline). Before, the task that sent the token request held every other call of
the connection with it, past their deadlines, for as long as a hung token endpoint let it (20 s).

A failed flight is remembered for the endpoint's ``Retry-After``, else a short pause: the calls that come
meanwhile get its failure instead of a token request each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from toolbridge.errors import ConfigurationError, TokenRefreshFailed, ToolbridgeError

__all__ = ["FAILURE_PAUSE", "Flights", "unanswered"]

logger = logging.getLogger("toolbridge.credentials")
FAILURE_PAUSE = 2.0
"""Seconds a failed refresh of a connection is answered from memory (the endpoint gave no Retry-After)."""


@dataclass(eq=False, slots=True)
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: Exception | None = None


class Flights:
    """Flights by connection id, and the failures of those that just failed."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._running: dict[str, _Flight] = {}
        self._failures: dict[str, tuple[float, TokenRefreshFailed | ConfigurationError]] = {}
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Flights:
        self._group = await anyio.create_task_group().__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """A flight still under way is cancelled; its token request and commit, shielded, still end (each
        bounded by its own timeout), so a token the provider has issued is kept."""
        if self._group is not None:
            group, self._group = self._group, None
            group.cancel_scope.cancel()
            await group.__aexit__(kind, exc, tb)

    def running(self, ident: str) -> bool:
        return ident in self._running

    async def join(
        self, ident: str, work: Callable[[], Awaitable[None]], *, until: float | None, tool: str
    ) -> bool:
        """Start ``work`` as the flight of ``ident`` unless one is under way, and wait for it until ``until``
        (``anyio.current_time()``; None: until it ends). True when it ended (its failure is raised, as a
        copy naming ``tool``: each caller's error is its own), False when the caller's time ran out first."""
        flight = self._running.get(ident)
        if flight is None:
            flight = self._running[ident] = _Flight()
            if self._group is None:  # not entered (a manager used without ``async with``): run it here
                await self._fly(ident, flight, work)
            else:
                self._group.start_soon(self._fly, ident, flight, work)
        with anyio.CancelScope(deadline=until if until is not None else float("inf")):
            await flight.done.wait()
        if not flight.done.is_set():
            return False
        if isinstance(flight.error, ToolbridgeError):
            raise _copy(flight.error, tool)
        if flight.error is not None:
            raise flight.error
        return True

    async def _fly(self, ident: str, flight: _Flight, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except ToolbridgeError as exc:  # what a refresh raises on purpose: every waiter raises it
            flight.error = exc
        except Exception as exc:  # the top of a task of its own: raised here, a bug would end the task group
            logger.exception("refreshing connection %s failed inside toolbridge", ident)
            flight.error = exc  # each waiter raises it: the hub reports it as any call's bug
        finally:  # whatever ends it (the manager closing too), no waiter waits for it any longer
            del self._running[ident]
            flight.done.set()

    # -- failures ----------------------------------------------------------------------------------

    def remember(self, ident: str, exc: TokenRefreshFailed | ConfigurationError) -> None:
        """The calls waiting for this refresh get its failure, not a token request each (ten calls sent ten,
        and a 429's Retry-After was not heeded): for the endpoint's Retry-After, else a short pause. A
        refusal the operator must fix (``invalid_client``) is remembered as long: it changes no state."""
        if isinstance(exc, TokenRefreshFailed):
            exc.retry_after = max(exc.retry_after or 0.0, FAILURE_PAUSE)
            self._failures[ident] = (self._clock() + exc.retry_after, exc)
        else:
            self._failures[ident] = (self._clock() + FAILURE_PAUSE, exc)

    def forget(self, ident: str) -> None:
        self._failures.pop(ident, None)

    def raise_recent(self, ident: str, tool: str) -> None:
        """Raise (a copy naming ``tool``) the failure of the connection's last refresh while it is recent."""
        recent = self._failures.get(ident)
        if recent is None:
            return
        until, exc = recent
        left = until - self._clock()
        if left <= 0:
            del self._failures[ident]
            return
        again = type(exc)(exc.message, hint=exc.hint, tool=tool or None)
        if isinstance(again, TokenRefreshFailed):
            again.retry_after = left
        raise again


def unanswered(host: str, ident: str, timeout: float, tool: str) -> TokenRefreshFailed:
    """The caller's deadline came before the token endpoint ``host`` answered the refresh it waits for."""
    return TokenRefreshFailed(
        f"the token endpoint {host} has not answered the token refresh of connection {ident} within the "
        "call's deadline",
        hint=f"the refresh goes on for up to {timeout:g} s and its token is kept; try again shortly, and if "
        "this persists, check that the authorization server is up",
        tool=tool or None,
    )


def _copy(exc: ToolbridgeError, tool: str) -> ToolbridgeError:
    """``exc`` with its attributes, naming ``tool`` (its constructor may take more than a message)."""
    again = type(exc).__new__(type(exc), *exc.args)
    again.__dict__.update(exc.__dict__)
    again.tool = tool or None
    return again
