"""A 2026-07-28 MCP server whose tools run as tasks of the ``io.modelcontextprotocol/tasks`` extension.

Served by FastMCP with ``fastmcp-tasks`` (SEP-2663's server side, in memory), in its own virtual
environment (tests/.venvs/fastmcp-tasks; see tests/surfaces/mcp/test_task_extension.py):
``python ext_task_server.py http PORT`` or ``python ext_task_server.py stdio``. ``echo`` may run as a
task (the server makes one whenever the request declares the extension) and waits ``seconds`` first;
``ask_name`` asks its client's name (an elicitation, through ``tasks/get``'s ``inputRequests`` and
``tasks/update``) and greets it.

It also serves the fixtures the tasks scenarios of the conformance suite 0.2.0-alpha.11 ask for
(``tasks-*``; their descriptions list them): ``greet`` (never a task), ``slow_compute`` (a task that
sleeps ``seconds``), ``failing_job`` (a task only, which ends in a tool error), ``protocol_error_job``
(a task that fails with a JSON-RPC error), ``confirm_delete`` (asks once) and ``multi_input`` (asks
two things at once), and ``test_tool_with_task``: asked without an answer it asks the client's name
(``input_required``, before any task: a middleware, as fastmcp-tasks makes a task tool's task at once),
then runs as a task that greets the name given.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.tools.base import InputRequiredToolResult
from fastmcp.utilities.tasks import TaskConfig
from fastmcp_tasks import TasksExtension
from mcp.shared.exceptions import MCPError

mcp = FastMCP("ext-tasks")
mcp.add_extension(TasksExtension(url="memory://"))
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@mcp.tool(task=True)
async def echo(text: str, seconds: float = 0.0, repeat: int = 1) -> str:
    """``text`` (``repeat`` times), after ``seconds``."""
    await anyio.sleep(seconds)
    return text * repeat


@mcp.tool(task=True)
async def ask_name(ctx: Context) -> str | mcp_types.InputRequiredResult:
    """Asks the client's name, then greets it."""
    answers = ctx.input_responses
    if not answers:
        asked = mcp_types.ElicitRequestFormParams(message="Your name?", requested_schema=NAME_SCHEMA)
        return mcp_types.InputRequiredResult(input_requests={"name": mcp_types.ElicitRequest(params=asked)})
    answer = next(iter(answers.values()))
    content = answer.content if isinstance(answer, mcp_types.ElicitResult) else answer["content"]
    return f"hello {content['name']}"


def _form(message: str, schema: dict[str, object]) -> mcp_types.ElicitRequest:
    return mcp_types.ElicitRequest(
        params=mcp_types.ElicitRequestFormParams(message=message, requested_schema=schema)
    )


CONFIRM_SCHEMA = {"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]}


@mcp.tool
async def greet(name: str) -> str:
    """Greets ``name`` (never a task)."""
    return f"Hello, {name}!"


@mcp.tool(task=True)
async def slow_compute(seconds: float = 0.0, label: str = "") -> str:
    """Sleeps ``seconds``, then answers."""
    await anyio.sleep(seconds)
    return f"computed {label}".strip()


@mcp.tool(task=TaskConfig(mode="required"))
async def failing_job() -> str:
    """Always a task; ends in a tool error after a second."""
    await anyio.sleep(1)
    raise ValueError("failing_job always fails")


@mcp.tool(task=True)
async def protocol_error_job() -> str:
    """Fails with a JSON-RPC error."""
    raise MCPError(code=-32603, message="protocol_error_job fails at the protocol level")


@mcp.tool(task=True)
async def confirm_delete(ctx: Context, filename: str = "") -> str | mcp_types.InputRequiredResult:
    """Asks once for a confirmation, then answers."""
    if not ctx.input_responses:
        asked = _form(f"Delete {filename}?", CONFIRM_SCHEMA)
        return mcp_types.InputRequiredResult(input_requests={"confirm": asked})
    return f"deleted {filename}"


@mcp.tool(task=True)
async def multi_input(ctx: Context) -> str | mcp_types.InputRequiredResult:
    """Asks two things at once, then answers."""
    answers = ctx.input_responses or {}
    if len(answers) < 2:
        asked = {"first": _form("First?", CONFIRM_SCHEMA), "second": _form("Second?", CONFIRM_SCHEMA)}
        return mcp_types.InputRequiredResult(input_requests=asked)
    return "both answered"


@mcp.tool(name="test_tool_with_task", task=TaskConfig(mode="required"))
async def tool_with_task(user_name: str = "") -> str:
    """Greets ``user_name`` (asked of the client first, see :class:`AskFirst`)."""
    return f"Hello, {user_name}! (from a task)"


class AskFirst(Middleware):
    """``test_tool_with_task``: the client's name asked with ``input_required`` before the task is made,
    then given to the task as the tool's argument."""

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        message = context.message
        if message.name != "test_tool_with_task" or context.fastmcp_context is None:
            return await call_next(context)
        answers = context.fastmcp_context.input_responses
        if not answers:
            asked = _form("Your name?", NAME_SCHEMA)
            return InputRequiredToolResult(mcp_types.InputRequiredResult(input_requests={"user_name": asked}))
        answer = next(iter(answers.values()))
        content = answer.content if isinstance(answer, mcp_types.ElicitResult) else answer["content"]
        named = message.model_copy(
            update={"arguments": {**(message.arguments or {}), "user_name": content["name"]}}
        )
        return await call_next(context.copy(message=named))


mcp.add_middleware(AskFirst())


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        mcp.run(transport="stdio", show_banner=False)
    else:
        mcp.run(
            transport="http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True, show_banner=False
        )
