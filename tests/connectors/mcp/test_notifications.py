"""Progress from an upstream tool reaches the agent that called it (toolbridge served over stdio)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .conftest import EVERYTHING, NODE, require

pytestmark = pytest.mark.anyio
APP = Path(__file__).with_name("stdio_federation.py")


async def test_upstream_progress_is_forwarded_to_the_caller() -> None:
    require(NODE, EVERYTHING)
    params = StdioServerParameters(
        command=sys.executable, args=[str(APP), str(NODE), str(EVERYTHING)], env={"PATH": os.environ["PATH"]}
    )
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    async with Client(params, mode="legacy") as client:
        result = await client.call_tool(
            "ev.trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=progress
        )
    assert "completed" in result.content[0].text  # type: ignore[union-attr]
    assert seen == [(1, 3), (2, 3), (3, 3)]
