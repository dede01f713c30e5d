"""What an MCP agent sends beside a call's arguments, for an upstream that may ask it for input.

In the 2026-07-28 era a server that needs something from the client (an elicitation, a sampling
request, the client's roots) answers ``resultType: "input_required"`` with ``inputRequests``; the client
answers them and sends the request again with ``inputResponses`` and the opaque ``requestState``. A
proxy can relay that round trip only for a client that can take part in it. The MCP surface sets
:data:`CALL_INPUT` around ``Hub.call`` (and prompt and resource requests) for such clients; an upstream
MCP connector reads it, passes the answers on, and tells the upstream what the agent can do (its
capabilities). Without it (REST, Python, a 2025-11-25 client) an ``input_required`` answer is an
:class:`~toolbridge.errors.InputRequired` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CALL_INPUT", "INPUT_CAPABILITIES", "CallInput"]

INPUT_CAPABILITIES: Mapping[str, str] = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
"""Input request method → the client capability it needs."""


@dataclass(frozen=True, slots=True)
class CallInput:
    """A stateless-era MCP agent's capabilities, and its answers to an upstream's earlier input requests."""

    capabilities: Mapping[str, Any] = field(default_factory=dict)
    responses: Mapping[str, Any] | None = None
    state: str | None = None

    def params(self) -> dict[str, Any]:
        """The answers as request parameters (``inputResponses``, ``requestState``), when there are any."""
        extra: dict[str, Any] = {}
        if self.responses is not None:
            extra["inputResponses"] = dict(self.responses)
        if self.state is not None:
            extra["requestState"] = self.state
        return extra

    def missing(self, requests: Mapping[str, Any]) -> list[str]:
        """The capabilities ``requests`` (an ``inputRequests`` map) need that the agent did not declare."""
        needed = {
            INPUT_CAPABILITIES.get(str(r.get("method")), str(r.get("method")))
            for r in requests.values()
            if isinstance(r, Mapping)
        }
        return sorted(c for c in needed if c not in self.capabilities)


CALL_INPUT: ContextVar[CallInput | None] = ContextVar("toolbridge_call_input", default=None)
