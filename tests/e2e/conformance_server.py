"""The fixtures the MCP conformance suite's server scenarios call, served by the official SDK's MCPServer.

Why our own: the suite is tested against the python-sdk's "everything" conformance server
(``examples/servers/everything-server``), which is an example in that repository, not a package: no
registry carries it (the ``@modelcontextprotocol/conformance`` npm packages hold only the suite, and the
PyPI packages named like it are unrelated servers), and third-party code is installed, never copied
in. So this module serves the same *contract* — the tool, resource and prompt names and contents the
suite's scenarios ask for (their names are the suite's) — written here against the pinned ``mcp``. It is
the upstream of tests/e2e/test_mcp_conformance_proxy.py, which runs the suites against it directly and
through toolbridge and requires every scenario that passes directly to pass through toolbridge too.

``python conformance_server.py http PORT`` serves streamable HTTP on 127.0.0.1 with an event store and
a 100 ms ``retry`` (SSE polling); ``python conformance_server.py`` serves stdio.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp_types import (
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
OK = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}

server = MCPServer(name="toolbridge-conformance-fixtures", version="1.0.0")


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


def elicit(message: str, schema: dict[str, Any] = NAME) -> ElicitRequest:
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(prompt: str, max_tokens: int) -> CreateMessageRequest:
    messages = [SamplingMessage(role="user", content=text(prompt))]
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=messages, max_tokens=max_tokens))


def answered(ctx: Context, key: str, field: str) -> str | None:
    answer = (ctx.input_responses or {}).get(key)
    if isinstance(answer, ElicitResult) and answer.content:
        return str(answer.content.get(field))
    return None


# -- content ---------------------------------------------------------------------------------------------


@server.tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(description="Tests image content response")
def test_image_content() -> list[ImageContent]:
    return [ImageContent(type="image", data=PNG, mime_type="image/png")]


@server.tool(description="Tests audio content response")
def test_audio_content() -> list[AudioContent]:
    return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


def embedded(uri: str, mime: str, body: str) -> EmbeddedResource:
    resource = TextResourceContents(uri=uri, mime_type=mime, text=body)
    return EmbeddedResource(type="resource", resource=resource)


@server.tool(description="Tests embedded resource content response")
def test_embedded_resource() -> list[EmbeddedResource]:
    return [embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]


@server.tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    return [
        text("Multiple content types test:"),
        ImageContent(type="image", data=PNG, mime_type="image/png"),
        embedded("test://mixed-content-resource", "application/json", '{"test": "data", "value": 123}'),
    ]


@server.tool(description="Tests error response handling")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


# -- notifications during a call -------------------------------------------------------------------------


@server.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    for line in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.log("info", line)
        await anyio.sleep(0.05)
    return "Tool with logging executed successfully"


@server.tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        await anyio.sleep(0.05)
    meta = ctx.request_context.meta if ctx.request_context else None
    return str(meta.get("progress_token") if meta else 0)


@server.tool(description="Logs while it runs (no log reaches a stateless-era client that set no logLevel)")
async def test_logging_tool(ctx: Context) -> str:
    await ctx.log("info", "logged by test_logging_tool")
    return "logged"


@server.tool(description="Asks the client for input: the answer stream holds only the InputRequiredResult")
async def test_streaming_elicitation(ctx: Context) -> str | InputRequiredResult:
    if "user_name" in (ctx.input_responses or {}):
        return f"Hello, {answered(ctx, 'user_name', 'name') or '?'}!"
    return InputRequiredResult(input_requests={"user_name": elicit("What is your name?")})


@server.tool(description="Tests SSE polling by closing stream mid-call (SEP-1699)")
async def test_reconnection(ctx: Context) -> str:
    await ctx.log("info", "Before disconnect")
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)
    await ctx.log("info", "After reconnect")
    return "Reconnection test completed"


# -- requests to the client (handshake era) --------------------------------------------------------------


@server.tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(prompt: str, ctx: Context) -> str:
    try:
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=text(prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
    except MCPError as exc:  # the suite reads the refusal from the result
        return f"Sampling not supported or error: {exc}"
    said = result.content.text if result.content.type == "text" else "No response"
    return f"LLM response: {said}"


class Answer(BaseModel):
    response: str = Field(description="User's response")


class Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active",
        description="User status",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    verified: bool = Field(default=True, description="Verification status")


def choices(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"const": value, "title": title} for value, title in pairs]


class Enums(BaseModel):
    untitledSingle: str = Field(
        description="Simple enum without titles",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    titledSingle: str = Field(
        description="Enum with titled options (oneOf)",
        json_schema_extra={
            "oneOf": choices(
                ("low", "Low Priority"), ("medium", "Medium Priority"), ("high", "High Priority")
            )
        },
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={
            "items": {
                "anyOf": choices(("feature", "New Feature"), ("bug", "Bug Fix"), ("docs", "Documentation"))
            }
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={
            "enum": ["small", "medium", "large"],
            "enumNames": ["Small Size", "Medium Size", "Large Size"],
        },
    )


async def ask(ctx: Context, message: str, schema: type[BaseModel], label: str) -> str:
    try:
        result = await ctx.elicit(message=message, schema=schema)
    except MCPError as exc:  # the suite reads the refusal from the result
        return f"Elicitation not supported or error: {exc}"
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"{label}: action={result.action}, content={content}"


@server.tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(message: str, ctx: Context) -> str:
    return await ask(ctx, message, Answer, "User response")


@server.tool(description="Tests elicitation with default values for all primitive types (SEP-1034)")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    return await ask(ctx, "Please provide user information", Defaults, "Elicitation result")


@server.tool(description="Tests elicitation with enum schema variations per SEP-1330")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    message = "Please select values using different enum schema types"
    return await ask(ctx, message, Enums, "Elicitation completed")


@server.tool(description="Needs the client's sampling capability (a top-level -32021 error otherwise)")
async def test_missing_capability(ctx: Context) -> str:
    capabilities = ctx.session.client_capabilities
    if capabilities is None or capabilities.sampling is None:
        message = "This tool requires the client 'sampling' capability"
        raise MCPError(code=-32021, message=message, data={"requiredCapabilities": {"sampling": {}}})
    return "Client declared sampling capability; proceeding."


# -- input requests (stateless era, SEP-2322) ------------------------------------------------------------


@server.tool(description="Tests InputRequiredResult with a single elicitation request")
async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    if "user_name" in (ctx.input_responses or {}):
        return f"Hello, {answered(ctx, 'user_name', 'name') or '?'}!"
    return InputRequiredResult(input_requests={"user_name": elicit("What is your name?")})


@server.tool(description="Tests InputRequiredResult with a single sampling request")
async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    answer = (ctx.input_responses or {}).get("capital_question")
    if answer is not None:
        ok = isinstance(answer, CreateMessageResult) and answer.content.type == "text"
        return f"Model said: {answer.content.text if ok else '?'}"  # type: ignore[union-attr]
    return InputRequiredResult(
        input_requests={"capital_question": sample("What is the capital of France?", 100)}
    )


@server.tool(description="Tests InputRequiredResult with a single roots/list request")
async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    answer = (ctx.input_responses or {}).get("client_roots")
    if answer is not None:
        return f"Client exposed {len(answer.roots) if isinstance(answer, ListRootsResult) else 0} root(s)."
    return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})


@server.tool(description="Tests requestState round-tripping in the InputRequiredResult flow")
async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "request-state-nonce":
        return "state-ok: confirmation received"
    asked = {"confirm": elicit("Please confirm", OK)}
    return InputRequiredResult(input_requests=asked, request_state="request-state-nonce")


@server.tool(
    description="Tests InputRequiredResult carrying elicitation, sampling and roots requests together"
)
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    if {"user_name", "greeting", "client_roots"} <= (ctx.input_responses or {}).keys():
        return "All inputs received."
    asked: dict[str, InputRequest] = {
        "user_name": elicit("What is your name?"),
        "greeting": sample("Generate a greeting", 50),
        "client_roots": ListRootsRequest(),
    }
    return InputRequiredResult(input_requests=asked, request_state="multiple-inputs")


COLOR = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}


@server.tool(description="Tests a three-round InputRequiredResult flow with evolving requestState")
async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
    responses = ctx.input_responses or {}
    if state["round"] == 1 and "step1" in responses:
        asked = {"step2": elicit("Step 2: What is your favorite color?", COLOR)}
        after = {"round": 2, "name": answered(ctx, "step1", "name")}
        return InputRequiredResult(input_requests=asked, request_state=json.dumps(after))
    if state["round"] == 2 and "step2" in responses:
        return f"{state.get('name')} likes {answered(ctx, 'step2', 'color')}."
    first = {"step1": elicit("Step 1: What is your name?")}
    return InputRequiredResult(input_requests=first, request_state=json.dumps({"round": 1}))


@server.tool(description="Tests that the server rejects a tampered requestState echo")
async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    if ctx.request_state is None:
        return InputRequiredResult(
            input_requests={"confirm": elicit("Please confirm", OK)}, request_state="round-1"
        )
    return f"state-ok: {ctx.request_state}"


@server.tool(description="Tests that inputRequests only include methods the client declared support for")
async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
    caps = ctx.client_capabilities
    asked: dict[str, InputRequest] = {}
    if caps is None or caps.sampling is not None:
        asked["sample"] = sample("Say hello", 50)
    if caps is None or caps.elicitation is not None:
        asked["ask"] = elicit("What is your name?")
    return InputRequiredResult(input_requests=asked, request_state="capability-gated")


# -- schemas, headers, list changes ----------------------------------------------------------------------

SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@server.tool(name="json_schema_2020_12_tool", description="Tests JSON Schema 2020-12 keyword preservation")
def json_schema_2020_12_tool() -> str:
    return "json_schema_2020_12_tool"


# MCPServer derives input schemas from signatures; this fixture's schema is the suite's, set as is.
server._tool_manager._tools["json_schema_2020_12_tool"].parameters = SCHEMA_2020_12


@server.tool(description="Tests SEP-2243 Mcp-Param-* server-side validation")
def test_x_mcp_header(
    region: str = Field(  # noqa: PT028 (a tool, not a test: its argument has a default)
        default="<none>",
        description="Mirrored into the Mcp-Param-Region header",
        json_schema_extra={"x-mcp-header": "Region"},
    ),
) -> str:
    return f"region={region}"


def dynamic() -> str:
    """Registered and removed again by the list-change triggers."""
    return "dynamic"


@server.tool(description="Mutates the tool list and announces it (SEP-2575)")
async def test_trigger_tool_change(ctx: Context) -> str:
    server.add_tool(dynamic, name="test_dynamic_tool")
    server.remove_tool("test_dynamic_tool")
    await ctx.notify_tools_changed()
    return "tool list changed"


@server.tool(description="Mutates the prompt list and announces it (SEP-2575)")
async def test_trigger_prompt_change(ctx: Context) -> str:
    server.add_prompt(Prompt.from_function(dynamic, name="test_dynamic_prompt", description="dynamic"))
    server.remove_prompt("test_dynamic_prompt")
    await ctx.notify_prompts_changed()
    return "prompt list changed"


# -- resources and prompts -------------------------------------------------------------------------------


@server.resource("test://static-text", description="A static text resource for testing")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", description="A static binary resource (image) for testing")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", description="A resource template with parameter substitution")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource("test://watched-resource", description="A resource that can be subscribed to for updates")
def watched() -> str:
    return "Watched resource content"


@server.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage(content=text("This is a simple prompt for testing."))]


@server.prompt(description="A prompt with required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    return [UserMessage(content=text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]


@server.prompt(description="A prompt that includes an embedded resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    return [
        UserMessage(content=embedded(resourceUri, "text/plain", "Embedded resource content for testing.")),
        UserMessage(content=text("Please process the embedded resource above.")),
    ]


@server.prompt(description="A prompt that includes image content")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(content=ImageContent(type="image", data=PNG, mime_type="image/png")),
        UserMessage(content=text("Please analyze the image above.")),
    ]


CONTEXT = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}


@server.prompt(description="Tests InputRequiredResult from prompts/get (SEP-2322 non-tool request)")
async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    if "user_context" in (ctx.input_responses or {}):
        said = answered(ctx, "user_context", "context") or "?"
        return [UserMessage(content=text(f"Use the following context: {said}"))]
    asked = {"user_context": elicit("What context should the prompt use?", CONTEXT)}
    return InputRequiredResult(input_requests=asked)


# -- logging level, subscriptions, completions -----------------------------------------------------------


async def set_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
    return EmptyResult()


async def subscribe(ctx: ServerRequestContext, params: SubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


async def unsubscribe(ctx: ServerRequestContext, params: UnsubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


# MCPServer has no public registration for these three methods yet.
lowlevel = server._lowlevel_server
lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


@server.completion()
async def complete(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion:
    return Completion(values=[], total=0, has_more=False)


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
        port = int(sys.argv[2])
        server.run(
            "streamable-http", host="127.0.0.1", port=port, event_store=MemoryEvents(), retry_interval=100
        )
    else:
        server.run("stdio")
