"""Scopes decide which tools an agent sees: ``Principal.can_see`` compiles its scopes into two regular
expressions (a "no good match" search answer checks every tool of the catalog against them). It must
answer exactly as the definition does: some scope's shell-style pattern matches the tool's full name,
with write access, or with read access and the tool read-only."""

from __future__ import annotations

import fnmatch
import random

from toolbridge import Principal
from toolbridge.catalog import Tool, ToolAnnotations

OBJECT = {"type": "object", "properties": {}}
WORDS = ("slack", "slack2", "github", "chat", "post", "list", "issues", "a", "b_c", "x-y")


def by_definition(principal: Principal, tool: Tool) -> bool:
    return any(
        fnmatch.fnmatchcase(tool.name, s.pattern) and (s.access == "write" or tool.annotations.read_only)
        for s in principal.scopes
    )


def random_pattern(rng: random.Random) -> str:
    parts = [rng.choice((*WORDS, "*", "?", "s*", "[sg]*", "*_*", "[a-c]"))]
    if rng.random() < 0.7:
        parts.append(rng.choice((*WORDS, "*", "chat_*", "*post*", "l?st")))
    return ".".join(parts)


def test_compiled_scopes_answer_as_the_definition_does() -> None:
    rng = random.Random(20261204)
    tools = [
        Tool(
            f"{c}.{rng.choice(WORDS)}_{rng.choice(WORDS)}",
            c,
            "",
            OBJECT,
            ToolAnnotations(read_only=rng.random() < 0.5),
        )
        for c in rng.choices(WORDS, k=300)
    ]
    for _ in range(300):
        scopes = [random_pattern(rng) + rng.choice(("", ":read", ":write")) for _ in range(rng.randint(0, 4))]
        principal = Principal.agent("agent", scopes)
        sees = principal.sight()
        for tool in tools:
            expected = by_definition(principal, tool)
            assert principal.can_see(tool) is expected and sees(tool) is expected, (scopes, tool.name)


def test_a_bare_star_sees_everything_and_star_read_only_read_only_tools() -> None:
    write = Tool("gh.delete_repo", "gh", "", OBJECT)
    read = Tool("gh.list_repos", "gh", "", OBJECT, ToolAnnotations(read_only=True))
    assert Principal.agent("all", ["*"]).sight()(write)
    assert not Principal.agent("reader", ["*:read"]).can_see(write)
    assert Principal.agent("reader", ["*:read"]).can_see(read)
    assert not Principal.agent("none", []).can_see(read)
    assert Principal.local().can_see(write)
