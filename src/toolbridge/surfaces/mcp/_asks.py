"""An upstream's requests to its client, put to the MCP agent whose call they belong to.

A handshake-era upstream asks its client mid-call: ``elicitation/create``, ``sampling/createMessage``,
``roots/list``. The connector hands each one to the call's :data:`~toolbridge.connectors._events.Ask`;
this module builds that function for one agent request. A 2025-11-25 agent (stdio or HTTP) that declared
the capability gets the same request from toolbridge, on the stream the request's progress would take,
and its answer — result or error — goes back upstream as it came. Otherwise the upstream gets a JSON-RPC
error saying why the agent cannot be asked: it did not declare the capability, or it speaks the
2026-07-28 era, where a server cannot ask mid-call (there an upstream asks with ``input_required``,
which toolbridge relays).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from toolbridge.connectors._events import Ask

__all__ = ["askable", "asker"]

CAPABILITY = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
_REQUEST: TypeAdapter[types.ServerRequest] = TypeAdapter(types.ServerRequest)


class _Answer(BaseModel):
    """The agent's result, kept whole (every member, known or not)."""

    model_config = ConfigDict(extra="allow")


def asker(ctx: ServerRequestContext[Any, Any], related: str | None) -> Ask:
    """How the upstream's requests reach the agent of ``ctx``; ``related``: the agent's request id when
    they ride its request's own stream (None: the session's stream)."""

    async def ask(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        why = _cannot(ctx, method, params)
        if why is not None:
            return _error(-32601, f"toolbridge cannot put {method!r} to the agent: {why}")
        try:
            request = _REQUEST.validate_python({"method": method, "params": dict(params)})
        except ValidationError as exc:
            return _error(-32602, f"{method!r} from the upstream is not valid: {exc.errors()[0]['msg']}")
        metadata = ServerMessageMetadata(related_request_id=related) if related is not None else None
        try:
            answer = await ctx.session.send_request(request, _Answer, metadata=metadata)
        except MCPError as exc:  # the agent's own error (or no stream to reach it), passed on
            error = {"code": exc.code, "message": exc.message}
            return {"error": error | ({"data": exc.data} if exc.data is not None else {})}
        except ValidationError as exc:
            return _error(-32603, f"the agent's answer to {method!r} is not valid: {exc.errors()[0]['msg']}")
        return {"result": answer.model_dump(mode="json", by_alias=True, exclude_none=True)}

    return ask


def askable(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any] | None:
    """The capabilities a 2025-11-25 agent declared that toolbridge can put requests to (None: a
    2026-07-28 agent, whose own capabilities travel with its requests)."""
    capabilities = ctx.session.client_capabilities
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or capabilities is None:
        return None
    declared = {name: getattr(capabilities, name, None) for name in CAPABILITY.values()}
    return {
        name: value.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name, value in declared.items()
        if value is not None
    }


def _cannot(ctx: ServerRequestContext[Any, Any], method: str, params: Mapping[str, Any]) -> str | None:
    """Why the agent cannot be asked ``method`` (None: it can)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return (
            f"it speaks {ctx.protocol_version}, where a server cannot ask mid-call (the upstream speaks "
            "2025-11-25; in the stateless era it would answer input_required, which toolbridge relays)"
        )
    needed = CAPABILITY[method]
    capabilities = ctx.session.client_capabilities
    declared = getattr(capabilities, needed, None) if capabilities is not None else None
    if declared is None:
        return f"it did not declare the {needed!r} capability"
    if method == "elicitation/create":
        return _mode_missing(declared, params)
    return None


def _mode_missing(declared: types.ElicitationCapability, params: Mapping[str, Any]) -> str | None:
    """Why an agent's elicitation capability does not cover the request's mode (None: it does). An empty
    ``elicitation`` (2025-06-18, before modes) means form mode."""
    mode = params.get("mode", "form")
    if mode == "url" and declared.url is None:
        return "it declared elicitation without the 'url' mode this request asks for"
    if mode == "form" and declared.form is None and declared.url is not None:
        return "it declared elicitation without the 'form' mode this request asks for"
    return None


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
