"""Every REST response carries ``X-Request-Id``: the caller's, or one made for the request — the same id
the call's result and audit row carry."""

from __future__ import annotations

import httpx2
import pytest
from tests.surfaces.rest.test_rest import BASE, Served, served  # noqa: F401  (the fixture)

from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio


async def test_a_given_request_id_is_echoed_on_success_and_on_errors(served: Served) -> None:  # noqa: F811
    for method, path in (("GET", "/v1/tools"), ("GET", "/v1/tools/notes.nope"), ("GET", "/v1/calls")):
        response = await served.http.request(
            method, path, headers={**served.auth(), "X-Request-Id": "abc-123"}
        )
        assert response.headers["x-request-id"] == "abc-123", (path, response.status_code)
    unauthenticated = await served.http.get("/v1/tools", headers={"X-Request-Id": "who-1"})
    assert unauthenticated.status_code == 401 and unauthenticated.headers["x-request-id"] == "who-1"


async def test_a_request_without_one_gets_one_that_the_call_and_audit_share(served: Served) -> None:  # noqa: F811
    response = await served.http.post(
        "/v1/tools/notes.count/call", json={"arguments": {"text": "a b c"}}, headers=served.auth()
    )
    rid = response.headers["x-request-id"]
    assert rid and response.json()["request_id"] == rid
    rows = (await served.http.get("/v1/calls", headers=served.auth())).json()
    assert rid in str(rows)
    other = await served.http.get("/v1/tools", headers=served.auth())
    assert other.headers["x-request-id"] not in ("", rid)


async def test_unusable_ids_are_replaced(served: Served) -> None:  # noqa: F811
    response = await served.http.get("/v1/tools", headers={**served.auth(), "X-Request-Id": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500 and len(response.headers["x-request-id"]) < 100


async def test_workspace_responses_carry_it_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from toolbridge import Hub

    hub = Hub()
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE) as http:
            response = await http.get("/v1/workspaces/shared/files", headers={"X-Request-Id": "ws-1"})
    assert response.headers["x-request-id"] == "ws-1"
