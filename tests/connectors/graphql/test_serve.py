"""A GraphQL connector in ``toolbridge serve``: an agent calls it over REST and reads its errors."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests._patience import patience
from tests.connectors.graphql.conftest import SHOP
from tests.e2e.test_serve import serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
CALL = "/v1/tools/shop.user/call"


async def test_an_agent_calls_graphql_tools_over_rest(shop_server: str, tmp_path: Path) -> None:
    (tmp_path / "shop.graphql").write_text(SHOP.read_text())
    (tmp_path / "toolbridge.yaml").write_text(
        "connectors:\n  shop:\n    kind: graphql\n"
        f"    endpoint: {shop_server}/graphql\n    schema: shop.graphql\n"
        "agents:\n  assistant: {scopes: ['*']}\n"
    )
    with serving(tmp_path / "toolbridge.yaml", tmp_path) as server:
        auth = {"Authorization": f"Bearer {server.key}"}
        async with httpx2.AsyncClient(base_url=server.base, headers=auth, timeout=patience(30)) as http:
            listed = (await http.get("/v1/tools")).json()
            ok = await http.post(
                "/v1/tools/shop.user/call", json={"arguments": {"id": "1", "select": "name"}}
            )
            bad = await http.post(
                "/v1/tools/shop.user/call", json={"arguments": {"id": "1", "select": "pay"}}
            )
            broken = await http.post("/v1/tools/shop.broken/call", json={"arguments": {}})
    names = {t["name"] for t in (listed["tools"] if isinstance(listed, dict) else listed)}
    assert {"shop.user", "shop.create_user"} <= names
    assert ok.status_code == 200 and ok.json()["result"] == {"name": "Ada"}, ok.text
    assert bad.status_code == 422 and "Cannot query field 'pay' on type 'User'" in bad.json()["detail"]
    problem = broken.json()
    assert problem["code"] == "upstream_status" and problem["upstream_status"] == 200
    assert "the broken field always fails (at broken)" in problem["detail"]
