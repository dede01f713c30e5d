"""Signing in to the admin UI, its cookie, its CSRF and Origin checks, its headers; in-process over ASGI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.surfaces.admin._kit import Served, csrf_of, served, sign_in

pytestmark = pytest.mark.anyio


@pytest.fixture
async def admin() -> AsyncIterator[Served]:
    async with served() as s:
        yield s


async def test_a_browser_asking_for_the_root_is_sent_to_the_admin_ui_and_an_api_client_is_not(
    admin: Served,
) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    page = await admin.http.get("/", headers={"Accept": browser})
    assert page.status_code == 303 and page.headers["location"] == "/admin/"
    for accept in ("application/json", "*/*", "text/html, application/json"):
        index = await admin.http.get("/", headers={"Accept": accept})
        assert index.status_code == 200 and index.json()["admin"] == "/admin/", accept


async def test_pages_need_a_signed_in_operator(admin: Served) -> None:
    for path in ("/admin/", "/admin/tools", "/admin/tools/notes.add"):
        answer = await admin.http.get(path)
        assert answer.status_code == 303 and answer.headers["location"] in ("/admin/login", "/admin/tools")
    keyed = await admin.http.get("/admin/tools", headers={"Authorization": f"Bearer {admin.operator_key}"})
    assert keyed.status_code == 303  # a key is no session: the admin UI is for a person's browser


async def test_an_operator_signs_in_with_a_cookie_that_holds_no_key(admin: Served) -> None:
    answer = await sign_in(admin.http, admin.operator_key)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    cookie = answer.headers["set-cookie"]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/admin" in flags
    assert any(f.startswith("max-age=") and int(f.split("=")[1]) == 8 * 3600 for f in flags)
    assert "secure" not in flags  # plain http here; https gets Secure (below)
    assert admin.operator_key not in cookie
    page = await admin.http.get("/admin/tools")
    assert page.status_code == 200 and "agent:ops" in page.text and "notes.add" in page.text


async def test_the_cookie_is_secure_over_https(admin: Served) -> None:
    admin.http.base_url = "https://toolbridge.test"
    answer = await sign_in(admin.http, admin.operator_key)
    assert "secure" in [p.strip().lower() for p in answer.headers["set-cookie"].split(";")]


async def test_a_key_of_an_agent_that_is_no_operator_is_refused_with_why(admin: Served) -> None:
    answer = await sign_in(admin.http, admin.agent_key)
    assert answer.status_code == 403
    assert "agent:writer is not an operator" in answer.text and "scope &#39;*&#39;" in answer.text
    assert (await admin.http.get("/admin/tools")).status_code == 303


async def test_a_wrong_key_is_refused(admin: Served) -> None:
    answer = await sign_in(admin.http, "tb_nope")
    assert answer.status_code == 401 and "Not signed in" in answer.text


@pytest.mark.parametrize(
    ("csrf", "message"), [(None, "the form has no CSRF token"), ("forged", "is not this session")]
)
async def test_a_post_without_the_session_csrf_token_is_refused(
    admin: Served, csrf: str | None, message: str
) -> None:
    await sign_in(admin.http, admin.operator_key)
    data = {"arguments": '{"text": "x"}'} | ({"csrf": csrf} if csrf else {})
    answer = await admin.http.post("/admin/tools/notes.add", data=data)
    assert answer.status_code == 403 and message in answer.text
    await admin.hub.audit.flush()
    assert [r for r in await admin.hub.audit.tail(10) if r.entry.tool == "notes.add"] == []


async def test_a_post_from_another_origin_is_refused_even_with_the_token(admin: Served) -> None:
    await sign_in(admin.http, admin.operator_key)
    csrf = csrf_of((await admin.http.get("/admin/tools/notes.add")).text)
    answer = await admin.http.post(
        "/admin/tools/notes.add",
        data={"csrf": csrf, "arguments": "{}"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "cross-site" in answer.text and "evil.example" in answer.text
    same = await admin.http.post(
        "/admin/tools/notes.add",
        data={"csrf": csrf, "arguments": '{"text": "x"}'},
        headers={"Origin": "http://toolbridge.test"},
    )
    assert same.status_code == 200


async def test_sign_out_ends_the_session(admin: Served) -> None:
    await sign_in(admin.http, admin.operator_key)
    cookie = admin.http.cookies.get("toolbridge_admin")
    csrf = csrf_of((await admin.http.get("/admin/tools")).text)
    out = await admin.http.post("/admin/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    admin.http.cookies.clear()
    again = await admin.http.get("/admin/tools", headers={"Cookie": f"toolbridge_admin={cookie}"})
    assert again.status_code == 303  # the old session id is dead on the server, not only in the jar


async def test_a_revoked_key_ends_its_session(admin: Served) -> None:
    await sign_in(admin.http, admin.operator_key)
    await admin.hub.agents.revoke("ops")
    admin.hub.agents._cache.clear()  # (the hub caches a key's principal for a short while)
    assert (await admin.http.get("/admin/tools")).status_code == 303


async def test_every_page_has_the_security_headers(admin: Served) -> None:
    await sign_in(admin.http, admin.operator_key)
    for path in ("/admin/login", "/admin/tools", "/admin/tools/notes.count", "/admin/static/admin.css"):
        answer = await admin.http.get(path)
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script" not in answer.text.replace("&lt;script", "")


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, False),  # Chromium under no-referrer
        ({"Origin": "null"}, True),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
    ],
)
async def test_an_opaque_origin_is_taken_only_from_a_same_origin_fetch(
    admin: Served, headers: dict[str, str], refused: bool
) -> None:
    await sign_in(admin.http, admin.operator_key)
    csrf = csrf_of((await admin.http.get("/admin/tools/notes.add")).text)
    answer = await admin.http.post(
        "/admin/tools/notes.add", data={"csrf": csrf, "arguments": '{"text": "x"}'}, headers=headers
    )
    assert (answer.status_code == 403 and "cross-site" in answer.text) == refused, answer.text[-600:]


async def test_an_empty_key_is_refused_with_a_message_about_the_form_not_about_headers(admin: Served) -> None:
    """The hub's message for no key speaks to API clients ('Authorization: Bearer'): not to a person
    who left the form's field blank (or typed spaces)."""
    answer = await sign_in(admin.http, "   ")
    assert answer.status_code == 401 and "toolbridge_admin=" not in answer.headers.get("set-cookie", "")
    assert "enter the API key" in answer.text and "Authorization" not in answer.text


def test_the_docs_quote_the_content_security_policy_the_pages_send() -> None:
    """docs/admin-ui.md quoted a policy without its img-src and base-uri."""
    from pathlib import Path

    from toolbridge.surfaces.admin._web import CSP

    docs = (Path(__file__).parents[3] / "docs" / "admin-ui.md").read_text(encoding="utf-8")
    quoted = re.search(r"`Content-Security-Policy: (default-src[^`]*)`", docs)
    assert quoted and " ".join(quoted.group(1).split()) == CSP


async def test_a_sign_in_form_the_server_no_longer_knows_is_shown_again_ready_to_submit(
    admin: Served,
) -> None:
    """A form opened before the server restarted (its session gone) was a dead end: 403, 'the sign-in
    form came without its session cookie (cookies off …)', though the browser had sent its cookie."""
    form = await admin.http.get("/admin/login")
    admin.http.cookies.clear()
    admin.http.cookies.set("toolbridge_admin", "a-session-of-the-server-before-its-restart")
    form_data = {"csrf": csrf_of(form.text), "key": admin.operator_key}
    answer = await admin.http.post("/admin/login", data=form_data)
    assert answer.status_code == 403 and "the server restarted" in answer.text and "Sign in" in answer.text
    assert "toolbridge_admin=" in answer.headers["set-cookie"]  # a new form, with its own session
    admin.http.cookies.clear()  # (as a browser replaces the cookie)
    admin.http.cookies.set("toolbridge_admin", answer.cookies["toolbridge_admin"])
    form_data = {"csrf": csrf_of(answer.text), "key": admin.operator_key}
    again = await admin.http.post("/admin/login", data=form_data)
    assert again.status_code == 303 and again.headers["location"] == "/admin/"
