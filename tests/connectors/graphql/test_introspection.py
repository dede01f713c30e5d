"""The schema fetched by introspection: through the SSRF guard, capped, and refused with a reason.

Transport-level: name resolution is injected (RELIABILITY.md G), and the answers a real server gives
rarely (introspection refused at HTTP 200, an oversized answer, a redirect) come from
``httpx2.MockTransport``; ariadne turning it off, and an ``errors`` object, are in test_calls.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx2
import pytest
from graphql import build_schema, introspection_from_schema

from tests.connectors.graphql.conftest import SHOP
from toolbridge.connectors.graphql import GraphQLConnector
from toolbridge.errors import ConfigurationError

ENDPOINT = "https://api.shop.test/graphql"
INTROSPECTION = {"data": introspection_from_schema(build_schema(SHOP.read_text()))}


def public(host: str, port: int) -> Sequence[str]:
    return ["93.184.215.14"]


def recording(answer: httpx2.Response, sent: list[httpx2.Request]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return answer

    return httpx2.MockTransport(handle)


def test_introspection_builds_the_same_tools_as_the_sdl() -> None:
    sent: list[httpx2.Request] = []
    transport = recording(httpx2.Response(200, json=INTROSPECTION), sent)
    connector = GraphQLConnector.from_schema(
        "shop", ENDPOINT, schema_transport=transport, schema_resolver=public
    )
    assert [t.name for t in connector.tools()] == [
        t.name for t in GraphQLConnector.from_schema("shop", ENDPOINT, SHOP).tools()
    ]
    (request,) = sent
    assert request.method == "POST" and request.headers["host"] == "api.shop.test"
    assert request.url.host == "93.184.215.14"  # pinned to the address that was checked
    assert "__schema" in json.loads(request.content)["query"] and "authorization" not in request.headers


@pytest.mark.parametrize("addresses", [["10.0.0.5"], ["93.184.215.14", "127.0.0.1"], ["169.254.169.254"]])
def test_a_name_resolving_to_an_internal_address_is_refused_before_connecting(addresses: list[str]) -> None:
    sent: list[httpx2.Request] = []
    transport = recording(httpx2.Response(200, json=INTROSPECTION), sent)
    with pytest.raises(ConfigurationError, match="SSRF guard"):
        GraphQLConnector.from_schema(
            "shop", ENDPOINT, schema_transport=transport, schema_resolver=lambda h, p: addresses
        )
    assert sent == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            httpx2.Response(200, json={"errors": [{"message": "introspection is disabled"}]}),
            "introspection failed: introspection is disabled",
        ),
        (httpx2.Response(401, json={"message": "Bad credentials"}), "introspection answered HTTP 401"),
        (httpx2.Response(302, headers={"Location": "http://169.254.169.254/"}), "answered HTTP 302"),
        (httpx2.Response(200, text="<html>login</html>"), "not JSON"),
    ],
)
def test_an_unusable_introspection_answer_is_refused_with_the_reason(
    answer: httpx2.Response, message: str
) -> None:
    sent: list[httpx2.Request] = []
    with pytest.raises(ConfigurationError, match=message) as info:
        GraphQLConnector.from_schema(
            "shop", ENDPOINT, schema_transport=recording(answer, sent), schema_resolver=public
        )
    assert len(sent) == 1  # a redirect is not followed
    assert "schema" in (info.value.hint or "")


def test_an_oversized_introspection_answer_is_refused() -> None:
    transport = recording(httpx2.Response(200, json=INTROSPECTION), [])
    with pytest.raises(ConfigurationError, match="over 1,000 bytes"):
        GraphQLConnector.from_schema(
            "shop", ENDPOINT, schema_transport=transport, schema_resolver=public, max_schema_bytes=1000
        )


def test_a_name_the_resolver_cannot_encode_is_refused_by_the_guard() -> None:
    """A label over 63 characters: the system resolver raised UnicodeError (idna), which passed the guard
    as a traceback — at start, a hub with such an endpoint did not start at all (found by the outside SSRF
    probe with the real resolver, in a loopback-only network namespace). Nothing is looked up: the name
    fails to encode first."""
    sent: list[httpx2.Request] = []
    transport = recording(httpx2.Response(200, json=INTROSPECTION), sent)
    with pytest.raises(ConfigurationError, match="SSRF guard"):
        GraphQLConnector.from_schema(
            "shop", f"https://{'a' * 64}.shop.test/graphql", schema_transport=transport
        )
    assert sent == []
