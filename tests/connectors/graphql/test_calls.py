"""Calls through the hub to a real GraphQL server process (ariadne under uvicorn, server.py): variables,
selections, GraphQL errors and partial results, credentials, retries and the safety of mutations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.connectors.graphql.conftest import SHOP
from tests.connectors.openapi.conftest import configured
from toolbridge import Hub, InvalidArguments, Limits, OutcomeUnknown, Principal, UpstreamStatusError
from toolbridge.connectors.graphql import GraphQLConnector
from toolbridge.credentials import Secret
from toolbridge.errors import ConfigurationError, IdempotencyKeyReused, UpstreamError
from toolbridge.resilience import Resilience

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def _no_wait(seconds: float) -> None:
    return None


def shop_hub(endpoint: str, **kwargs: Any) -> Hub:
    hub = Hub(resilience=Resilience(sleep=_no_wait), **kwargs)
    hub.add_connector(GraphQLConnector.from_schema("shop", endpoint, SHOP))
    return hub


@pytest.fixture
async def hub(shop_server: str) -> AsyncIterator[Hub]:
    async with shop_hub(f"{shop_server}/graphql") as running:
        yield running


async def call(hub: Hub, tool: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
    return (await hub.call(Principal.local(), f"shop.{tool}", arguments, **kwargs)).value


async def test_a_query_returns_the_fields_value_with_the_default_selection(hub: Hub) -> None:
    user = await call(hub, "user", {"id": "1"})
    assert user == {
        "id": "1", "name": "Ada", "role": "ADMIN", "joined": "2020-01-01T00:00:00Z",
        "address": {"city": "London"},
    }  # fmt: skip
    assert await call(hub, "user", {"id": "404"}) is None
    assert await call(hub, "user", {"id": 1, "select": "id"}) == {"id": "1"}  # an ID as GraphQL takes it too
    assert [u["name"] for u in await call(hub, "users", {"role": "CUSTOMER"})] == ["Mallory"]


async def test_arguments_arrive_as_variables_verbatim(hub: Hub) -> None:
    hostile = 'x") { __typename } mutation { deleteUser(id: "1") } #\n$id'
    assert await call(hub, "echo", {"text": hostile}) == hostile
    assert await call(hub, "user", {"id": "1", "select": "id"}) == {"id": "1"}  # nothing was deleted


async def test_a_select_asks_for_other_fields(hub: Hub) -> None:
    user = await call(hub, "user", {"id": "1", "select": "name orders(first: 1) { total items }"})
    assert user == {"name": "Ada", "orders": [{"total": 12.5, "items": ["tea"]}]}
    found = await call(hub, "search", {"text": "tea"})
    assert found == [{"__typename": "Order", "id": "o1", "total": 12.5, "items": ["tea"]}]


async def test_a_bad_select_is_refused_before_anything_is_sent(hub: Hub) -> None:
    before = await call(hub, "effects", {})
    with pytest.raises(InvalidArguments, match="Cannot query field 'salary'"):
        await call(hub, "create_user", {"input": {"name": "Eve"}, "select": "id salary"})
    assert await call(hub, "effects", {}) == before


async def test_errors_without_data_are_an_upstream_error_with_messages_and_paths(hub: Hub) -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await call(hub, "broken", {})
    error = info.value
    assert "the broken field always fails (at broken)" in error.message
    assert error.upstream_status == 200 and error.body and '"code": "BROKEN"' in error.body


async def test_a_partial_result_keeps_the_data_and_the_errors(hub: Hub) -> None:
    result = await call(hub, "fragile", {"select": "id name"})
    assert result["data"][0] == {"id": "1", "name": "Ada"} and result["data"][1] is None
    assert result["errors"] == [{"message": "Mallory's name is withheld", "path": ["fragile", 1, "name"]}]


async def test_a_partial_result_cut_at_the_result_cap_still_tells_the_errors(shop_server: str) -> None:
    """The errors came after the data: a partial result over the hub's result cap was cut before them, so
    the agent read a list with a hole in it and no word that an item had failed."""
    select = "id name role joined address { city country { name } }"  # 150 bytes of data before the error
    async with shop_hub(f"{shop_server}/graphql", limits=Limits(max_result_bytes=120)) as hub:
        result = await hub.call(Principal.local(), "shop.fragile", {"select": select})
    assert result.truncated and "Mallory's name is withheld" in result.text


async def test_a_mutation_takes_effect_once(hub: Hub) -> None:
    before = await call(hub, "effects", {})
    created = await call(
        hub, "create_user", {"input": {"name": "Grace", "role": "ADMIN"}, "select": "id name role"}
    )
    assert created["name"] == "Grace" and created["role"] == "ADMIN"
    assert await call(hub, "delete_user", {"id": created["id"]}) is True
    assert await call(hub, "effects", {}) == before + 2


async def test_a_busy_answer_is_retried_for_queries_and_mutations(shop_server: str) -> None:
    """503 with Retry-After means "not processed": both kinds are sent again, and a mutation counts once."""
    async with shop_hub(f"{shop_server}/busy/graphql") as hub:
        before = await call(hub, "effects", {})
        created = await call(hub, "create_user", {"input": {"name": "Lin"}})
        assert created["name"] == "Lin"
        assert await call(hub, "effects", {}) == before + 1


async def test_a_mutation_whose_answer_is_lost_is_not_sent_again(shop_server: str) -> None:
    async with shop_hub(f"{shop_server}/graphql") as counter, shop_hub(f"{shop_server}/lost/graphql") as hub:
        before = await call(counter, "effects", {})
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, "create_user", {"input": {"name": "Ghost"}})
        assert info.value.upstream_status == 500
        assert await call(counter, "effects", {}) == before + 1  # the server applied it once


async def test_a_keyed_mutation_is_not_retried_once_sent_without_a_key_header(shop_server: str) -> None:
    """No ``idempotency_header``: the key does not travel, so a write whose answer is lost stays unknown."""
    async with shop_hub(f"{shop_server}/graphql") as counter, shop_hub(f"{shop_server}/lost/graphql") as hub:
        before = await call(counter, "effects", {})
        with pytest.raises((UpstreamStatusError, OutcomeUnknown)):
            await call(hub, "create_user", {"input": {"name": "Keyed"}}, idempotency_key="k-1")
        assert await call(counter, "effects", {}) == before + 1


async def test_credentials_go_with_the_call(shop_server: str) -> None:
    token = "s3cr3t-token-value"
    async with shop_hub(
        f"{shop_server}/graphql", credentials=configured("shop", scheme="bearer", secret=Secret(token))
    ) as hub:
        echoed = await call(hub, "whoami", {})
    assert echoed == "Bearer [redacted]"  # it arrived; the hub masks it in what the agent sees


async def test_a_redirect_to_another_origin_keeping_the_key_is_not_followed(shop_server: str) -> None:
    """The API moved to another host name and its redirect keeps the query string, key included: the
    hub would carry the key there in the URL (found by an outside secrets probe)."""
    key = "gql-query-key-CANARY-51c0"
    port = shop_server.rsplit(":", 1)[1]
    connector = GraphQLConnector.from_schema(
        "shop", f"{shop_server}/moved/graphql", SHOP, allow_hosts=[f"localhost:{port}"]
    )
    hub = Hub(
        credentials=configured("shop", scheme="api_key", name="key", location="query", secret=Secret(key))
    )
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamError, match="credential in the URL") as info:
            await call(hub, "whoami", {})
    assert key not in str(info.value)


async def test_an_endpoint_that_is_not_graphql_is_told(shop_server: str) -> None:
    async with shop_hub(f"{shop_server}/plain") as hub:
        with pytest.raises(UpstreamError, match="not a GraphQL response"):
            await call(hub, "effects", {})


async def test_the_schema_by_introspection_through_the_guard(shop_server: str) -> None:
    from toolbridge.errors import ConfigurationError

    endpoint = f"{shop_server}/graphql"
    with pytest.raises(ConfigurationError, match="SSRF guard"):
        GraphQLConnector.from_schema("shop", endpoint)
    host = endpoint.split("/")[2]
    connector = GraphQLConnector.from_schema("shop", endpoint, allow_hosts=[host])
    assert [t.name for t in connector.tools()] == [
        t.name for t in GraphQLConnector.from_schema("shop", endpoint, SHOP).tools()
    ]


def test_introspection_turned_off_is_told_with_the_servers_words(shop_server: str) -> None:
    """ariadne answers 400 to introspection it turned off: the message was "introspection answered HTTP
    400" and the hint a guess between credentials and introspection (GraphQL fault probe)."""
    host = shop_server.split("/")[2]
    with pytest.raises(ConfigurationError) as info:
        GraphQLConnector.from_schema("shop", f"{shop_server}/closed/graphql", allow_hosts=[host])
    assert info.value.message.endswith(
        "answered HTTP 400: Cannot query '__schema': introspection is disabled."
    )
    assert (info.value.hint or "").startswith("the API turns introspection off: save the schema")


async def test_an_error_object_answering_introspection_leaves_the_hub_running(
    shop_server: str, tmp_path: Path
) -> None:
    """``errors`` as one object, not a list, stopped the hub at start with a bare KeyError: 0."""
    host = shop_server.split("/")[2]
    (tmp_path / "toolbridge.yaml").write_text(
        "connectors:\n  odd:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/one-error/graphql\n    allow_hosts: ['{host}']\n"
    )
    async with Hub.from_file(tmp_path / "toolbridge.yaml") as hub:
        assert "introspection failed: the server is misconfigured (" in (hub.connector("odd").status or "")


@pytest.mark.parametrize(
    ("route", "why"), [("deep", "it is nested too deeply"), ("surrogate", "a lone UTF-16 surrogate escape")]
)
async def test_json_toolbridge_cannot_use_is_an_upstream_error(
    shop_server: str, route: str, why: str
) -> None:
    """Both failed the call as "a toolbridge bug" (RecursionError, UnicodeEncodeError), with a traceback."""
    async with shop_hub(f"{shop_server}/{route}/graphql") as hub:
        with pytest.raises(UpstreamError) as info:
            await call(hub, "whoami", {})
    assert info.value.code == "upstream_error" and why in info.value.message


async def test_a_schema_nested_too_deeply_leaves_the_hub_running(shop_server: str, tmp_path: Path) -> None:
    """An introspection answer or a schema file nested thousands of levels deep stopped the hub at start
    (RecursionError): now the connector has no tools and says why."""
    host = shop_server.split("/")[2]
    (tmp_path / "deep.json").write_text('{"__schema": ' + "[" * 20_000 + "]" * 20_000 + "}")
    (tmp_path / "toolbridge.yaml").write_text(
        "connectors:\n  asked:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/deep/graphql\n    allow_hosts: ['{host}']\n"
        "  filed:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/graphql\n    schema: deep.json\n"
    )
    async with Hub.from_file(tmp_path / "toolbridge.yaml") as hub:
        for name in ("asked", "filed"):
            assert "nested too deeply" in (hub.connector(name).status or "")


async def test_toolbridge_yaml_builds_the_connector(shop_server: str, tmp_path: Path) -> None:
    (tmp_path / "shop.graphql").write_text(SHOP.read_text())
    (tmp_path / "toolbridge.yaml").write_text(
        "connectors:\n  shop:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/graphql\n    schema: shop.graphql\n"
        "    exclude: [delete_*]\n    selection_depth: 1\n"
        "  live:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/graphql\n    allow_hosts: ['{shop_server.split('/')[2]}']\n"
        "  missing:\n    kind: graphql\n    endpoint: https://missing.test/graphql\n"
        "    schema: nope.graphql\n"
    )
    async with Hub.from_file(tmp_path / "toolbridge.yaml") as hub:
        names = {t.name for t in hub.list_tools(Principal.local())}
        assert "shop.create_user" in names and "shop.delete_user" not in names
        assert "live.delete_user" in names
        assert not any(n.startswith("missing.") for n in names)
        assert "nope.graphql: no such file" in (hub.connector("missing").status or "")
        assert await call(hub, "user", {"id": "1"}) == {
            "id": "1",
            "name": "Ada",
            "role": "ADMIN",
            "joined": "2020-01-01T00:00:00Z",
        }


async def test_http_errors_with_retry_after_are_told_as_for_rest() -> None:
    """Transport-level: a 429 with a GraphQL error body (the ariadne server cannot answer one)."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        body = {"errors": [{"message": "rate limited: 100 points per minute"}]}
        return httpx2.Response(429, json=body, headers={"Retry-After": "7"})

    schema_file = SHOP
    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", schema_file, transport=httpx2.MockTransport(answer)
    )
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, "effects", {})
    error = info.value
    assert error.upstream_status == 429 and error.retry_after == 7
    assert "rate limited: 100 points per minute" in error.message and "wait 7 s" in (error.hint or "")


async def test_a_truncated_or_non_json_answer_is_an_upstream_error() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        assert set(sent) == {"query", "variables", "operationName"} and sent["operationName"] == "Effects"
        return httpx2.Response(
            200, content=b'{"data": {"effects": 1', headers={"Content-Type": "application/json"}
        )

    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP, transport=httpx2.MockTransport(answer)
    )
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamError, match="not a GraphQL response"):
            await call(hub, "effects", {})


async def test_a_secret_echoed_in_graphql_errors_is_masked() -> None:
    token = "gql-CANARY-0123456789"

    def answer(request: httpx2.Request) -> httpx2.Response:
        echoed = request.headers["authorization"]
        return httpx2.Response(200, json={"data": None, "errors": [{"message": f"bad token {echoed}"}]})

    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP, transport=httpx2.MockTransport(answer)
    )
    hub = Hub(credentials=configured("shop", scheme="bearer", secret=Secret(token)))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, "whoami", {})
    error = info.value
    assert "bad token Bearer [redacted]" in error.message
    assert token not in f"{error.message} {error.hint} {error.body}"


async def test_one_error_not_in_a_list_is_read_as_an_error() -> None:
    """Transport-level (no server we run answers so): ``errors`` as one object was shown as a Python dict."""
    answer = {
        "data": None,
        "errors": {"message": "the token is not taken", "extensions": {"code": "FORBIDDEN"}},
    }
    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP,
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=answer)),
    )  # fmt: skip
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamStatusError) as info:
            await call(hub, "whoami", {})
    assert info.value.message.endswith("(FORBIDDEN at HTTP 200, taken as 403): the token is not taken")


@pytest.mark.parametrize("answer", [{"data": {}}, {"data": None}, {"data": None, "errors": []}])
async def test_an_answer_without_the_field_and_without_errors_is_an_upstream_error(
    answer: dict[str, Any],
) -> None:
    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP,
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=answer)),
    )  # fmt: skip
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamError, match="holds no data for the field 'whoami'"):
            await call(hub, "whoami", {})


async def test_an_answer_over_max_response_bytes_says_to_select_less() -> None:
    users = [{"id": str(n), "name": "x" * 100} for n in range(200)]
    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP, max_response_bytes=4096,
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json={"data": {"users": users}})),
    )  # fmt: skip
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(UpstreamError) as info:
            await call(hub, "users", {})
    assert "larger than the connector's max_response_bytes" in info.value.message
    assert "select" in (info.value.hint or "")


async def test_a_mutation_sent_twice_with_one_key_takes_effect_once(hub: Hub) -> None:
    before = await call(hub, "effects", {})
    arguments = {"input": {"name": "Once"}, "select": "id name"}
    first = await call(hub, "create_user", arguments, idempotency_key="create-once-1")
    again = await call(hub, "create_user", arguments, idempotency_key="create-once-1")
    assert again == first
    assert await call(hub, "effects", {}) == before + 1
    with pytest.raises(IdempotencyKeyReused):
        await call(hub, "create_user", {"input": {"name": "Other"}}, idempotency_key="create-once-1")
    assert await call(hub, "effects", {}) == before + 1


async def test_a_mutation_whose_connection_breaks_after_sending_is_outcome_unknown() -> None:
    """Transport-level (a reset after the request went out): the write is not sent again."""
    sent: list[str] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content)["operationName"])
        raise httpx2.ReadError("connection reset by peer")

    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP, transport=httpx2.MockTransport(answer)
    )
    hub = Hub(resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(OutcomeUnknown):
            await call(hub, "delete_user", {"id": "1"})
        assert sent == ["DeleteUser"]
        with pytest.raises(UpstreamError):
            await call(hub, "effects", {})  # a query is retried: it is safe to send again
    assert sent.count("Effects") > 1
