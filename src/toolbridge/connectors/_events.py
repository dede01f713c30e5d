"""What a connector may report about the call running in this task: progress, for now.

A surface that can deliver progress to its client (MCP, when the client sent a progress token) sets
:data:`CALL_EVENTS` around ``Hub.call``; a connector whose upstream reports progress (an upstream MCP
server) reads it. Nothing else changes hands, so the call path stays the same for every surface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CALL_EVENTS", "CallEvents", "Progress"]

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
"""``(progress, total, message)``: report how far the call has come."""


@dataclass(frozen=True, slots=True)
class CallEvents:
    progress: Progress


CALL_EVENTS: ContextVar[CallEvents | None] = ContextVar("toolbridge_call_events", default=None)
