"""``HEAD`` on every REST resource that answers ``GET`` (RFC 9110 §9.3.2): the GET's status and headers,
no body. FastAPI's routes answered it 405; tus's own HEAD (an upload's offset) keeps its answer."""

from __future__ import annotations

import pytest
from tests.surfaces.rest.test_rest import Served, served  # noqa: F401  (the fixture)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/v1/tools", "/v1/tools/notes.count", "/v1/calls", "/v1/openapi.json"])
async def test_head_answers_as_get_without_the_body(served: Served, path: str) -> None:  # noqa: F811
    got = await served.http.get(path, headers=served.auth())
    head = await served.http.head(path, headers=served.auth())
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_of_what_get_refuses_is_refused_alike(served: Served) -> None:  # noqa: F811
    missing = await served.http.head("/v1/tools/notes.nope", headers=served.auth())
    assert (missing.status_code, missing.content) == (404, b"")
    anonymous = await served.http.head("/v1/tools")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    post_only = await served.http.head("/v1/tools/notes.count/call", headers=served.auth())
    assert post_only.status_code == 405 and "POST" in post_only.headers["allow"]
