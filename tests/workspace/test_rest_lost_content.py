"""A download whose content is gone from the blob store is a problem document, decided before any
header is sent — not a 200 with a length and then a dropped connection."""

from __future__ import annotations

import hashlib

import pytest

from .conftest import Env

pytestmark = pytest.mark.anyio


async def test_a_download_of_lost_content_is_a_problem_not_a_cut_200(env: Env) -> None:
    c, auth = env.client, env.auth
    params = {"path": "/lost.bin"}
    put = await c.put("/v1/workspaces/shared/content", params=params, content=b"x" * 1000, headers=auth)
    assert put.status_code == 201, put.text
    blobs = env.connector.service.blobs
    blobs.path_of(hashlib.sha256(b"x" * 1000).hexdigest()).unlink()  # type: ignore[attr-defined]  (local)
    got = await c.get("/v1/workspaces/shared/content", params=params, headers=auth)
    assert got.status_code == 404
    assert got.headers["content-type"] == "application/problem+json"
    assert "missing from the blob store" in got.json()["detail"]
    ranged = await c.get(
        "/v1/workspaces/shared/content", params=params, headers={**auth, "Range": "bytes=5-9"}
    )
    assert ranged.status_code == 404
