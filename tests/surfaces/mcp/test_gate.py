"""The Origin policy and API-key parsing of the MCP gate, case by case."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from toolbridge.surfaces.mcp._gate import OriginPolicy, api_key

PUBLIC = ("10.0.0.5", 443)
LOOPBACK = ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("origin", "host", "server", "allowed"),
    [
        (None, "anything", LOOPBACK, True),
        ("http://localhost:3000", "127.0.0.1:8080", LOOPBACK, True),
        ("http://127.0.0.2", "127.0.0.1:8080", PUBLIC, True),
        ("https://tb.example.com", "tb.example.com", PUBLIC, True),
        ("https://TB.example.com/", "tb.example.com", PUBLIC, True),
        ("https://tb.example.com", "tb.example.com", LOOPBACK, False),
        ("https://evil.example", "tb.example.com", PUBLIC, False),
        ("null", "tb.example.com", PUBLIC, False),
        ("file://", "tb.example.com", PUBLIC, False),
        ("https://tb.example.com", None, PUBLIC, False),
    ],
)
def test_origin_policy(origin: str | None, host: str | None, server: tuple[str, int], allowed: bool) -> None:
    assert OriginPolicy().allows(origin, host, server) is allowed


def test_configured_and_wildcard_origins() -> None:
    assert OriginPolicy(["https://app.example.com/"]).allows("https://app.example.com", "x", LOOPBACK)
    assert not OriginPolicy(["https://app.example.com"]).allows("https://app.example.org", "x", LOOPBACK)
    assert OriginPolicy(["*"]).allows("https://anything.example", "x", LOOPBACK)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer tb_abc"}, "tb_abc"),
        ({"authorization": "bearer   tb_abc "}, "tb_abc"),
        ({"authorization": "Basic dXNlcjpwdw=="}, None),
        ({"authorization": "Bearer "}, None),
        ({"x-api-key": "tb_xyz"}, "tb_xyz"),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_api_key(headers: dict[str, str], key: str | None) -> None:
    assert api_key(Headers(headers)) == key
