"""Pinning: the definition of each upstream tool a person approved, so a changed tool is caught.

A definition is the tool's name, title, description and schemas as the upstream sent them; its digest
is the SHA-256 of its canonical JSON. Approved definitions live in the ``tool_pins`` table (migration
``0005``). A tool whose current digest differs from its pin is quarantined until approved again; the
diff between the two is what the person is shown. Descriptions that talk to the model (``<IMPORTANT>``,
"ignore previous instructions", "read ~/.ssh" …) are flagged wherever they appear in the definition.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from toolbridge.storage import Database, metadata

__all__ = [
    "Pin",
    "PinStore",
    "State",
    "ToolReview",
    "definition_diff",
    "definition_digest",
    "instruction_flags",
    "quarantine_message",
    "tool_pins",
]

tool_pins = sa.Table(
    "tool_pins",
    metadata,
    sa.Column("tool", sa.String(64), primary_key=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("approved_by", sa.String(80), nullable=False),
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
)

_PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema")

_FLAGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "tag addressed to the model",
        re.compile(r"<\s*/?\s*(important|system|instructions?|secret|hidden)\b", re.I),
    ),
    (
        "asks to ignore earlier instructions",
        re.compile(
            r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}"
            r"\b(instructions?|prompts?|rules)",
            re.I | re.S,
        ),
    ),
    (
        "mentions secret files",
        re.compile(
            r"~/\.ssh|\bid_(rsa|ed25519|ecdsa)\b|\.aws/credentials|\.netrc\b|/etc/(passwd|shadow)|"
            r"\.env\b|mcp\.json|\bprivate key\b",
            re.I,
        ),
    ),
    (
        "tells the model to hide something from the user",
        re.compile(
            r"\b(do not|don't|never)\b.{0,20}\b(tell|mention|inform|reveal|show)\b.{0,30}\buser\b",
            re.I | re.S,
        ),
    ),
    (
        "gives the model orders",
        re.compile(
            r"\b(before|after) (using|calling) (this|any other) tool\b|\byou must (always|first|now)\b|"
            r"\b(send|forward|upload|post) .{0,40}\bto (https?://|the following)",
            re.I | re.S,
        ),
    ),
    (
        "contains invisible characters",
        re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\U000e0000-\U000e007f]"),
    ),
)


def pinned_definition(upstream_tool: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an upstream tool that is pinned (annotations are hints toolbridge ignores)."""
    return {k: upstream_tool[k] for k in _PINNED_FIELDS if upstream_tool.get(k) is not None}


def definition_digest(definition: Mapping[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def definition_diff(approved: Mapping[str, Any], current: Mapping[str, Any], *, limit: int = 4000) -> str:
    """A unified diff of the approved and current definitions (pretty JSON), cut at ``limit`` characters."""
    old = json.dumps(approved, sort_keys=True, indent=2, ensure_ascii=False).splitlines()
    new = json.dumps(current, sort_keys=True, indent=2, ensure_ascii=False).splitlines()
    text = "\n".join(difflib.unified_diff(old, new, "approved", "current", lineterm="", n=1))
    return text if len(text) <= limit else text[:limit] + "\n… (diff cut)"


def instruction_flags(definition: Mapping[str, Any]) -> list[str]:
    """What in the definition looks like instructions aimed at the model, with a short excerpt each."""
    flags: list[str] = []
    for where, text in _texts(definition, "tool"):
        for label, pattern in _FLAGS:
            match = pattern.search(text)
            if match:
                excerpt = text[max(0, match.start() - 20) : match.end() + 20].replace("\n", " ")
                flags.append(f"{where}: {label}: …{excerpt.encode('unicode_escape').decode()}…")
    return flags


def _texts(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, Mapping):
        return [t for k, v in value.items() for t in _texts(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, f"{where}[{i}]")]
    return []


@dataclass(frozen=True, slots=True)
class Pin:
    tool: str
    digest: str
    definition: Mapping[str, Any]
    approved_by: str
    approved_at: dt.datetime


class PinStore:
    """Approved tool definitions in the database."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def load(self, connector: str) -> dict[str, Pin]:
        query = sa.select(tool_pins).where(tool_pins.c.connector == connector)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return {r.tool: Pin(r.tool, r.digest, r.definition, r.approved_by, r.approved_at) for r in rows}

    async def approve(
        self, connector: str, definitions: Mapping[str, Mapping[str, Any]], *, by: str
    ) -> dict[str, Pin]:
        """Pin the given definitions (catalog name → definition); return the new pins."""
        now = dt.datetime.now(dt.UTC)
        pins = {tool: Pin(tool, definition_digest(d), dict(d), by, now) for tool, d in definitions.items()}
        if not pins:
            return pins
        async with self._db.transaction() as conn:
            await conn.execute(tool_pins.delete().where(tool_pins.c.tool.in_(list(pins))))
            await conn.execute(
                tool_pins.insert(),
                [
                    {
                        "tool": p.tool,
                        "connector": connector,
                        "digest": p.digest,
                        "definition": dict(p.definition),
                        "approved_by": by,
                        "approved_at": now,
                    }
                    for p in pins.values()
                ],
            )
        return pins


State = Literal["approved", "pending", "changed"]


@dataclass(frozen=True, slots=True)
class ToolReview:
    """One upstream tool as a person approving it sees it."""

    name: str
    upstream: str
    state: State
    digest: str
    flags: tuple[str, ...]
    diff: str | None
    approved_by: str | None
    definition: Mapping[str, Any]


def quarantine_message(review: ToolReview) -> str:
    if review.state == "pending":
        return f"{review.name!r} has not been approved yet"
    return f"the upstream definition of {review.name!r} changed since it was approved by {review.approved_by}"
