"""The admin UI's catalog: the REST search, a tool's page (escaped), and try-it through ``Hub.call``."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import pytest

from tests.surfaces.admin._kit import HOSTILE, Served, csrf_of, served, sign_in

pytestmark = pytest.mark.anyio


@pytest.fixture
async def admin() -> AsyncIterator[Served]:
    async with served() as s:
        await sign_in(s.http, s.operator_key)
        yield s


def _listed(page: str) -> list[str]:
    return re.findall(r'<a href="/admin/tools/([^"]+)">', page)


async def test_the_search_is_the_rest_apis(admin: Served) -> None:
    rest = await admin.http.get(
        "/v1/tools", params={"q": "count words"}, headers={"Authorization": f"Bearer {admin.operator_key}"}
    )
    page = await admin.http.get("/admin/tools", params={"q": "count words"})
    assert page.status_code == 200
    assert _listed(page.text) == [t["name"] for t in rest.json()["tools"]] and _listed(page.text)
    everything = await admin.http.get("/admin/tools")
    assert _listed(everything.text) == ["notes.add", "notes.count"]
    unknown = await admin.http.get("/admin/tools", params={"q": "x", "connector": "nope"})
    assert "no connector &#39;nope&#39;" in unknown.text


async def test_a_tools_description_is_shown_escaped(admin: Served) -> None:
    for path in ("/admin/tools/notes.count", "/admin/tools?q=count"):
        page = await admin.http.get(path)
        assert HOSTILE not in page.text, path
        if path == "/admin/tools/notes.count":
            assert html.escape(HOSTILE) in page.text
            assert "&#34;required&#34;" in page.text or "&quot;required&quot;" in page.text  # the schema


async def test_try_it_calls_the_tool_once_and_shows_the_result(admin: Served) -> None:
    page = await admin.http.get("/admin/tools/notes.add")
    answer = await admin.http.post(
        "/admin/tools/notes.add",
        data={"csrf": csrf_of(page.text), "arguments": '{"text": "<b>hi</b>"}', "idempotency_key": "k-1"},
    )
    assert answer.status_code == 200
    assert "&lt;b&gt;hi&lt;/b&gt;" in answer.text and "<b>hi</b>" not in answer.text
    request_id = re.search(r'class="request-id">([^<]+)<', answer.text)
    assert request_id
    await admin.hub.audit.flush()
    rows = [r.entry for r in await admin.hub.audit.tail(50) if r.entry.tool == "notes.add"]
    assert [(r.principal, r.outcome, r.request_id) for r in rows] == [
        ("agent:ops", "ok", request_id.group(1))
    ]


async def test_try_it_shows_the_problem_document_of_a_failed_call(admin: Served) -> None:
    csrf = csrf_of((await admin.http.get("/admin/tools/notes.add")).text)
    answer = await admin.http.post(
        "/admin/tools/notes.add", data={"csrf": csrf, "arguments": '{"txt": "<i>x</i>"}'}
    )
    assert answer.status_code == 200 and "invalid_arguments" in answer.text
    assert "<i>x</i>" not in answer.text
    await admin.hub.audit.flush()
    rows = [r.entry for r in await admin.hub.audit.tail(50) if r.entry.tool == "notes.add"]
    assert [r.error_code for r in rows] == ["invalid_arguments"]


async def test_arguments_that_are_not_json_are_said_so_and_nothing_is_called(admin: Served) -> None:
    csrf = csrf_of((await admin.http.get("/admin/tools/notes.add")).text)
    answer = await admin.http.post("/admin/tools/notes.add", data={"csrf": csrf, "arguments": "{nope"})
    assert "the arguments are not valid JSON" in answer.text
    assert "{nope" in answer.text  # the form keeps what was typed
    await admin.hub.audit.flush()
    assert [r for r in await admin.hub.audit.tail(50) if r.entry.tool == "notes.add"] == []


async def test_an_unknown_tool_is_a_404_page_with_guesses(admin: Served) -> None:
    page = await admin.http.get("/admin/tools/notes.ad")
    assert page.status_code == 404 and "notes.add" in page.text
