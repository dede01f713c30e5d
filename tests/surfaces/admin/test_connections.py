"""The admin UI's connections: the list without secrets, and the OAuth Connect button."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from tests.credentials.fakes import FakeAuthServer, api_tool, oauth_config
from tests.surfaces.admin._kit import Served, csrf_of, served, sign_in
from toolbridge import Hub
from toolbridge.credentials import AuthConfig, CredentialManager, Keyring, MasterKey, StaticKeys, Vault
from toolbridge.resilience import Resilience

pytestmark = pytest.mark.anyio
CALLBACK = "http://toolbridge.test/v1/connections/callback"
SECRET = "canary-admin-secret-7c1e"


@pytest.fixture
async def admin() -> AsyncIterator[Served]:
    server = FakeAuthServer()
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler))
    bindings = {
        "gh": oauth_config(redirect_uri=CALLBACK, probe_url="https://api.test/me"),
        "svc": AuthConfig(scheme="api_key", name="X-Key"),
    }
    hub = Hub(agents={"ops": ["*"], "writer": ["notes.*"]}, resilience=Resilience())
    hub.credentials = CredentialManager(
        Vault(hub.database, StaticKeys(Keyring(MasterKey.generate()))), bindings, client=client
    )
    hub.credentials.audit = hub.audit
    for connector in bindings:
        hub.tool(api_tool(client), connector=connector, name="me", read_only=True)
    async with client, served(hub) as s:
        added = await s.http.post(
            "/v1/connections",
            json={"connector": "svc", "account": "bot", "secret": SECRET},
            headers={"Authorization": f"Bearer {s.operator_key}"},
        )
        assert added.status_code == 201, added.text
        await sign_in(s.http, s.operator_key)
        yield s


async def test_connections_are_listed_without_their_secrets(admin: Served) -> None:
    page = await admin.http.get("/admin/connections")
    assert page.status_code == 200
    assert "<td>svc</td><td>bot</td><td>shared</td><td>api_key</td><td>active</td>" in page.text
    for path in (
        "/admin/connections",
        "/admin/tools",
        "/admin/tools/svc.me",
        "/admin/calls",
        "/admin/health",
    ):
        assert SECRET not in (await admin.http.get(path)).text, path


async def test_the_connect_button_sends_the_browser_to_the_provider_and_the_callback_connects(
    admin: Served,
) -> None:
    page = await admin.http.get("/admin/connections")
    assert '<option value="gh">gh</option>' in page.text and '<option value="svc">' not in page.text
    started = await admin.http.post(
        "/admin/connections/connect", data={"csrf": csrf_of(page.text), "connector": "gh", "account": "alice"}
    )
    assert started.status_code == 200
    link = re.search(r'<a id="continue" href="([^"]+)"', started.text)
    refresh = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', started.text)
    assert link and refresh and link.group(1) == refresh.group(1)
    url = html.unescape(link.group(1))
    query = parse_qs(urlsplit(url).query)
    assert query["redirect_uri"] == [CALLBACK] and query["code_challenge_method"] == ["S256"]
    done = await admin.http.get(
        "/v1/connections/callback", params={"code": "good-code", "state": query["state"]}
    )
    assert done.status_code == 200 and "Connected gh as alice" in done.text
    listed = await admin.http.get("/admin/connections")
    assert re.search(r"<td>gh</td><td>alice</td><td>[^<]+</td><td>oauth2</td><td>active</td>", listed.text), (
        listed.text[-1500:]
    )
    assert "at-" not in listed.text  # (the fake provider's tokens)


async def test_connect_checks_the_csrf_token(admin: Served) -> None:
    answer = await admin.http.post("/admin/connections/connect", data={"connector": "gh"})
    assert answer.status_code == 403 and "CSRF" in answer.text
