"""GraphQL errors whose code stands for an HTTP status, at HTTP 200, from a real GraphQL server (ariadne,
server.py): handled as an answer with that status would be. What Apollo Server, Hasura, Shopify and GitHub
send: ``extensions.code`` (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, THROTTLED …) or GitHub's ``type``.
The refresh on UNAUTHENTICATED is tested against a real OAuth server in tests/e2e/test_graphql_oidc.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.connectors.graphql.conftest import SHOP
from toolbridge import Hub, Principal, UpstreamStatusError
from toolbridge.connectors.graphql import GraphQLConnector
from toolbridge.errors import http_status
from toolbridge.resilience import Resilience

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def hub_at(endpoint: str, waits: list[float] | None = None) -> Hub:
    async def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    hub = Hub(resilience=Resilience(sleep=sleep))
    hub.add_connector(GraphQLConnector.from_schema("shop", endpoint, SHOP))
    return hub


async def call(hub: Hub, tool: str, arguments: dict[str, Any]) -> Any:
    return (await hub.call(Principal.local(), f"shop.{tool}", arguments)).value


@pytest.mark.parametrize(("field", "http"), [("user", 200), ("echo", 400)])
@pytest.mark.parametrize(
    ("route", "code", "status"),
    [
        ("coded", "FORBIDDEN", 403),
        ("coded", "BAD_USER_INPUT", 400),
        ("coded", "GRAPHQL_VALIDATION_FAILED", 400),
        ("coded", "NOT_FOUND", 404),
        ("coded", "access-denied", 403),  # Hasura's spelling
        ("github", "INSUFFICIENT_SCOPES", 403),
        ("github", "NOT_FOUND", 404),
    ],
)
async def test_a_coded_error_is_the_status_it_stands_for(
    shop_server: str, route: str, code: str, status: int, field: str, http: int
) -> None:
    """They were all an upstream error "HTTP 200" (or a plain 400) with a hint to correct the arguments:
    an agent refused for its scope was told to fix its input, and a REST caller got a 502 for its own bad
    input."""
    argument = "id" if field == "user" else "text"
    async with hub_at(f"{shop_server}/{route}/graphql") as hub:
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, field, {argument: code})
    assert info.value.upstream_status == status
    message = info.value.message
    assert f"refused with {code}" in message and f"({code} at HTTP {http}, taken as {status})" in message
    assert http_status(info.value) == (502 if status == 403 else status)
    assert (status == 403) == ("credentials" in (info.value.hint or ""))


async def test_an_error_with_another_code_keeps_the_status_of_the_answer(shop_server: str) -> None:
    async with hub_at(f"{shop_server}/coded/graphql") as hub:
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, "user", {"id": "INTERNAL_SERVER_ERROR"})
    assert info.value.upstream_status == 200  # processed and refused: not retried


async def test_a_throttled_mutation_waits_as_the_answer_says_and_takes_effect_once(shop_server: str) -> None:
    """Shopify's THROTTLED (HTTP 200) was final: the agent was told to correct its arguments. It is a 429
    now: not processed, so a mutation is sent again too, after the wait its cost extension implies."""
    waits: list[float] = []
    async with (
        hub_at(f"{shop_server}/graphql") as counter,
        hub_at(f"{shop_server}/throttled/graphql", waits) as hub,
    ):
        before = await call(counter, "effects", {})
        created = await call(hub, "create_user", {"input": {"name": "Throttled"}, "select": "name"})
        assert created == {"name": "Throttled"}
        assert await call(counter, "effects", {}) == before + 1
    assert waits and waits[0] >= 0.2  # (50 points wanted - 40 left) / 50 a second
