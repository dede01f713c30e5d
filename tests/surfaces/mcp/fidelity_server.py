"""An upstream MCP server (the official SDK's MCPServer) whose answers a proxy can easily change or lose.

Used by test_fidelity.py, which compares what it answers directly with what toolbridge relays:

- ``ask_name`` answers ``input_required`` (an elicitation, with ``requestState``) until the client
  answers it, then greets the name; ``ask_everything`` asks for elicitation, sampling and roots at once;
- ``fail_rich`` answers ``isError`` with a long text, an image, ``structuredContent`` and ``_meta``;
- ``refuse`` raises a JSON-RPC ``-32602`` with ``data``; ``needs_sampling`` a ``-32021`` (a missing client
  capability) unless the request declares ``sampling``;
- ``with_meta`` answers a success with ``_meta`` and ``structuredContent``;
- the prompt ``signed`` asks for a name (``input_required``) before it renders;
- the resource ``demo://note`` and the template ``demo://echo/{word}`` answer with the ``NOTE``
  environment variable, so two copies of the server serve the same URIs with different contents.

- ``reconnect`` logs, closes its SSE answer before the response (SSE polling, SEP-1699), logs again
  and answers: a client must resume the stream with ``Last-Event-ID`` to get the rest.

- ``ask_mid_call`` (handshake era) asks its client for its roots, a sample and a name with server
  requests, mid-call, and answers with what it got (or the client's refusals);

- ``touch(uri)`` tells subscribers that ``uri`` changed (a listen stream's ``resourceSubscriptions`` in
  the stateless era);
- ``chatty`` logs at ``info`` and at ``warning`` while it runs;

- ``slow(key)`` writes ``started KEY`` to the file ``$CANCELLED_FILE``, waits until it is cancelled,
  then writes ``cancelled KEY``.

``fidelity_server.py`` serves stdio; ``fidelity_server.py http PORT`` streamable HTTP on 127.0.0.1;
``fidelity_server.py http PORT polling`` the same with an event store and a 100 ms ``retry``.
"""

from __future__ import annotations

import json
import os
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolResult,
    CreateMessageRequest,
    CreateMessageRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    ImageContent,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    SamplingMessage,
    TextContent,
    ToolAnnotations,
)

server = MCPServer("fidelity")
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def _ask(message: str) -> ElicitRequest:
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=NAME_SCHEMA))


def _answered_name(ctx: Context) -> str | None:
    answer = (ctx.input_responses or {}).get("name")
    if isinstance(answer, ElicitResult) and answer.content:
        return str(answer.content.get("name"))
    return None


@server.tool(description="Ask the client for a name (input_required), then greet it.")
async def ask_name(ctx: Context) -> str | InputRequiredResult:
    name = _answered_name(ctx)
    if name is not None and ctx.request_state == "asked-once":
        return f"Hello, {name}!"
    return InputRequiredResult(
        input_requests={"name": _ask("What is your name?")}, request_state="asked-once"
    )


@server.tool(description="Ask for an elicitation, a sampling and the roots at once.")
async def ask_everything(ctx: Context) -> str | InputRequiredResult:
    if ctx.input_responses and {"name", "sample", "roots"} <= ctx.input_responses.keys():
        return "all answered"
    sample = CreateMessageRequest(
        params=CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text="Say hi"))],
            max_tokens=9,
        )
    )
    return InputRequiredResult(
        input_requests={"name": _ask("Name?"), "sample": sample, "roots": ListRootsRequest()}
    )


@server.tool(description="Fail with a long text, an image, structured content and _meta.")
def fail_rich() -> CallToolResult:
    return CallToolResult(
        content=[
            TextContent(type="text", text="line of a long failure report\n" * 120),
            ImageContent(type="image", data=PIXEL, mime_type="image/png"),
        ],
        structured_content={"failed": "everything", "count": 3},
        is_error=True,
        _meta={"example.com/trace": "trace-42"},
    )


@server.tool(description="Refuse with a JSON-RPC invalid-params error that carries data.")
def refuse(field: str) -> str:
    raise MCPError(-32602, f"{field} is not acceptable here", data={"field": field, "allowed": ["a", "b"]})


@server.tool(description="Needs the client's sampling capability.")
async def needs_sampling(ctx: Context) -> str:
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.sampling is None:
        raise MCPError(-32021, "this tool needs sampling", data={"requiredCapabilities": {"sampling": {}}})
    return "the client can sample"


@server.tool(
    description="Say it wiped something (annotated destructive, closed world).",
    annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False),
)
def wipe() -> str:
    return "wiped"


@server.tool(description="Claim to be read-only.", annotations=ToolAnnotations(read_only_hint=True))
def peek() -> str:
    return "peeked"


@server.tool(description="Succeed with _meta and structured content.")
def with_meta() -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text='{"ok": true}')],
        structured_content={"ok": True},
        _meta={"example.com/cost": 7},
    )


@server.prompt(description="A letter signed with a name the client is asked for.")
async def signed(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    name = _answered_name(ctx)
    if name is None:
        return InputRequiredResult(input_requests={"name": _ask("Sign as?")})
    return [UserMessage(f"Write a letter signed {name}.")]


@server.resource("demo://note", description="The NOTE this copy of the server was started with.")
def note() -> str:
    return os.environ.get("NOTE", "no note")


@server.resource("demo://echo/{word}", description="The word, after this copy's NOTE.")
def echo_word(word: str) -> str:
    return f"{os.environ.get('NOTE', 'no note')}: {word}"


@server.tool(description="Close the SSE answer before the response; the client must resume it.")
async def reconnect(ctx: Context) -> str:
    await ctx.log("info", "before the stream closes")
    await ctx.close_sse_stream()
    await ctx.log("info", "after the stream was closed")
    return "answered after the stream was closed"


@server.tool(description="Ask the client mid-call (handshake era) for its roots, a sample and a name.")
async def ask_mid_call(ctx: Context) -> str:
    said: list[str] = []
    try:
        roots = await ctx.session.list_roots()
        said.append("roots=" + ",".join(str(root.uri) for root in roots.roots))
    except MCPError as exc:
        said.append(f"roots refused ({exc.code}): {exc.message}")
    try:
        sampled = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text="Say hi"))],
            max_tokens=9,
            related_request_id=ctx.request_id,
        )
        said.append(f"sample={getattr(sampled.content, 'text', '?')} by {sampled.model}")
    except MCPError as exc:
        said.append(f"sampling refused ({exc.code}): {exc.message}")
    try:
        answer = await ctx.session.elicit_form("Name?", NAME_SCHEMA, related_request_id=ctx.request_id)
        said.append(f"elicited={answer.action}:{json.dumps(answer.content, sort_keys=True)}")
    except MCPError as exc:
        said.append(f"elicitation refused ({exc.code}): {exc.message}")
    return "\n".join(said)


@server.tool(description="Log at info and at warning, then answer.")
async def chatty(ctx: Context) -> str:
    await ctx.log("info", "chatty at info")
    await ctx.log("warning", "chatty at warning")
    return "said"


@server.tool(description="Tell subscribers that a resource changed.")
async def touch(uri: str, ctx: Context) -> str:
    await ctx.notify_resource_updated(uri)
    return "touched"


@server.tool(description="Wait until cancelled; then note the key in $CANCELLED_FILE.")
async def slow(key: str) -> str:
    _note(f"started {key}")
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        _note(f"cancelled {key}")
        raise
    return "never"


def _note(line: str) -> None:
    with open(os.environ["CANCELLED_FILE"], "a") as file:
        file.write(line + "\n")


class MemoryEvents(EventStore):
    """Every event of every stream, kept for replay after a ``Last-Event-ID``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self.events.append((stream_id, str(len(self.events) + 1), message))
        return str(len(self.events))

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((s for s, e, _ in self.events if e == last_event_id), None)
        for s, event_id, message in self.events:
            if s == stream and int(event_id) > int(last_event_id) and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        polling = (
            {"event_store": MemoryEvents(), "retry_interval": 100} if sys.argv[3:4] == ["polling"] else {}
        )
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), **polling)  # type: ignore[arg-type]
    else:
        server.run("stdio")
