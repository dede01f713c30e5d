"""What toolbridge declares to a handshake-era upstream: the requests it relays to its agents.

server-everything (the TypeScript SDK) lists its elicitation, sampling and roots tools only to a client
that declares those capabilities, and its SDK refuses to send those requests otherwise. Here it runs
under toolbridge (served over stdio, as ``toolbridge mcp`` does) and the official Python client is the
agent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.text import TextReceiveStream
from mcp import Client, StdioServerParameters

from tests._patience import patience

from .conftest import EVERYTHING, NODE, require

pytestmark = pytest.mark.anyio
APP = Path(__file__).with_name("stdio_federation.py")
ASKING = {"ev.get-roots-list", "ev.trigger-elicitation-request", "ev.trigger-sampling-request"}


def toolbridge() -> StdioServerParameters:
    require(NODE, EVERYTHING)
    return StdioServerParameters(
        command=sys.executable, args=[str(APP), str(NODE), str(EVERYTHING)], env={"PATH": os.environ["PATH"]}
    )


async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    if isinstance(params, types.ElicitRequestURLParams):  # the user opened the link
        assert params.url == "https://consent.example/grant" and params.elicitation_id == "grant-1"
        return types.ElicitResult(action="accept")
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True})


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content
    text = asked.text if isinstance(asked, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled: {text}"), model="agent-model"
    )


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_tools_that_ask_the_client_are_listed_and_their_requests_reach_the_agent() -> None:
    agent = Client(
        toolbridge(),
        mode="legacy",
        elicitation_callback=elicit,
        sampling_callback=sample,
        list_roots_callback=roots,
    )
    async with agent:
        names = {tool.name for tool in (await agent.list_tools()).tools}
        assert ASKING | {"ev.trigger-url-elicitation"} <= names, sorted(names)
        elicited = await agent.call_tool("ev.trigger-elicitation-request", {})
        assert not elicited.is_error and "- Name: Ada Lovelace" in text_of(elicited), text_of(elicited)
        sampled = await agent.call_tool("ev.trigger-sampling-request", {"prompt": "hello", "maxTokens": 50})
        assert (
            not sampled.is_error
            and "sampled: Resource trigger-sampling-request context: hello" in text_of(sampled)
        ), text_of(sampled)
        url = {"url": "https://consent.example/grant", "elicitationId": "grant-1"}
        opened = await agent.call_tool("ev.trigger-url-elicitation", url)
        assert "User completed the URL elicitation flow" in text_of(opened), text_of(opened)
        rooted = await agent.call_tool("ev.get-roots-list", {})
        assert not rooted.is_error and "file:///work/project" in text_of(rooted), text_of(rooted)


async def test_an_agent_that_cannot_answer_is_refused_with_the_reason() -> None:
    async with Client(toolbridge(), mode="legacy") as agent:  # declares no capability
        sampled = await agent.call_tool("ev.trigger-sampling-request", {"prompt": "hello", "maxTokens": 50})
    assert "did not declare the 'sampling' capability" in text_of(sampled), text_of(sampled)


async def test_an_agent_without_the_url_mode_is_not_sent_a_url_elicitation() -> None:
    """A 2025-11-25 agent declaring form-mode elicitation only, speaking JSON lines itself."""
    params = toolbridge()
    async with await anyio.open_process([params.command, *params.args], env=params.env) as process:
        assert process.stdin is not None and process.stdout is not None
        lines = TextReceiveStream(process.stdout)
        capabilities = {"elicitation": {"form": {}}}
        hello = {
            "protocolVersion": "2025-11-25",
            "capabilities": capabilities,
            "clientInfo": {"name": "t", "version": "1"},
        }
        call = {"name": "ev.trigger-url-elicitation", "arguments": {"url": "https://consent.example/grant"}}
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
        ):
            await process.stdin.send((json.dumps(message) + "\n").encode())
        answer = await answer_to(2, lines)
        await process.stdin.aclose()
    text = " ".join(block.get("text", "") for block in answer["result"]["content"])
    assert "declared elicitation without the 'url' mode" in text, answer


async def answer_to(request_id: int, lines: TextReceiveStream) -> dict[str, Any]:
    buffered = ""
    with anyio.fail_after(patience(60)):
        async for chunk in lines:
            buffered += chunk
            while "\n" in buffered:
                line, buffered = buffered.split("\n", 1)
                message = json.loads(line)
                if message.get("id") == request_id and "method" not in message:
                    return dict(message)
    raise AssertionError(f"toolbridge ended without answering request {request_id}")
