"""The admin UI's call log (paged, filtered) and its breaker and rate-limit page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.surfaces.admin._kit import Served, served, sign_in
from toolbridge import InvalidArguments, Principal
from toolbridge.surfaces.admin._operations import PAGE

pytestmark = pytest.mark.anyio


@pytest.fixture
async def admin() -> AsyncIterator[Served]:
    async with served() as s:
        await sign_in(s.http, s.operator_key)
        yield s


def _rows(page: str) -> list[tuple[str, str, str, str]]:
    """(seq, principal, tool, outcome) of each row of the call log."""
    cells = re.findall(
        r"<tr><td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", page
    )
    return [tuple(c) for c in cells]  # type: ignore[misc]


async def test_the_call_log_shows_every_principals_calls_newest_first_paged_by_cursor(admin: Served) -> None:
    agent = Principal.agent("writer", ["notes.*"])
    for n in range(PAGE + 5):
        await admin.hub.call(agent, "notes.add", {"text": f"n{n}"})
    with pytest.raises(InvalidArguments):
        await admin.hub.call(agent, "notes.add", {"txt": "x"})
    first = await admin.http.get("/admin/calls", params={"tool": "notes.add"})
    rows = _rows(first.text)
    assert len(rows) == PAGE and rows[0][1:] == ("agent:writer", "notes.add", "error")
    assert [int(r[0]) for r in rows] == sorted((int(r[0]) for r in rows), reverse=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older
    second = await admin.http.get(older.group(1).replace("&amp;", "&"))
    rest = _rows(second.text)
    assert len(rest) == 6 and int(rest[0][0]) < int(rows[-1][0]) and 'rel="next"' not in second.text
    failed = _rows((await admin.http.get("/admin/calls", params={"outcome": "error"})).text)
    assert [r[2:] for r in failed] == [("notes.add", "error")]


async def test_the_breaker_page_shows_each_connectors_state_as_the_rest_api_does(admin: Served) -> None:
    await admin.hub.call(Principal.agent("writer", ["notes.*"]), "notes.add", {"text": "x"})
    rest = await admin.http.get(
        "/v1/health/connectors", headers={"Authorization": f"Bearer {admin.operator_key}"}
    )
    page = await admin.http.get("/admin/health")
    assert page.status_code == 200
    for connector in rest.json()["connectors"]:
        assert f'<td>{connector["connector"]}</td><td class="state-{connector["breaker"]}">' in page.text


@pytest.mark.parametrize("cursor", ["²", "١٢", "-1", "1e3", "9" * 40, ""])
async def test_a_cursor_that_is_not_a_plain_number_shows_the_first_page(admin: Served, cursor: str) -> None:
    """'²' is a digit to str.isdigit but not to int(): the call log answered 500."""
    await admin.hub.call(Principal.agent("writer", ["notes.*"]), "notes.add", {"text": "x"})
    page = await admin.http.get("/admin/calls", params={"before": cursor})
    assert page.status_code == 200 and _rows(page.text)[0][2:] == ("notes.add", "ok")


async def test_the_breaker_page_lists_the_connections_ejected_with_their_time_left(admin: Served) -> None:
    """Outlier ejection (docs/resilience.md) is shown where the breakers are, as /v1/health/connectors
    lists it: the connection's id, the seconds left, which ejection it is."""
    await admin.hub.call(Principal.agent("writer", ["notes.*"]), "notes.add", {"text": "x"})
    outliers = admin.hub.resilience.state("notes").outliers
    for _ in range(outliers.policy.consecutive_failures):
        outliers.record("conn-alice", True)
    page = await admin.http.get("/admin/health")
    assert re.search(r'<td class="ejected">conn-alice \(\d+ s, ejection 1\)</td>', page.text), page.text
    assert "Ejected connections" in page.text
