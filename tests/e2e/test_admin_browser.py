"""The admin UI in a real browser (Chromium driven by Playwright) against `toolbridge serve` and a real
upstream on 127.0.0.1: sign in, search a tool, try it, find the call in the call log, sign out.

Chromium is the system's (``/usr/bin/chromium``; ``make test`` installs it with apt-get when it can):
Playwright's own browser download is never used. Without it the test skips, or fails under
TOOLBRIDGE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests._patience import patience
from tests.conftest import REQUIRE_SERVICES
from tests.e2e.test_serve import serving
from toolbridge.testing import Reply, Upstream, running_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
CHROMIUM = os.environ.get("TOOLBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"no Chromium at {CHROMIUM} (make test installs it with apt-get when run as root)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and TOOLBRIDGE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, timeout=patience(60) * 1000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


def _configure(folder: Path, upstream: Upstream) -> Path:
    get_order = {
        "operationId": "getOrder",
        "summary": "Look up one order by its id",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the order"}},
    }
    document = {
        "openapi": "3.0.3",
        "info": {"title": "shop", "version": "1"},
        "paths": {"/orders/{id}": {"get": get_order}},
    }
    (folder / "shop.json").write_text(json.dumps(document))
    config = folder / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  shop:\n    kind: openapi\n    spec: shop.json\n"
        f"    base_url: {upstream.url}\n    allow_hosts: ['127.0.0.1:{upstream.port}']\n"
        "agents:\n  assistant: {scopes: ['*']}\n"
    )
    return config


async def test_an_operator_signs_in_tries_a_tool_and_finds_the_call_in_the_log(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    timeout = patience(30) * 1000
    expect.set_options(timeout=timeout)
    async with running_upstream() as upstream:
        upstream.then(Reply(200, body={"id": "o-7", "item": "<b>book</b>"}))
        with serving(_configure(tmp_path, upstream), tmp_path) as server:
            context = await browser.new_context()
            context.set_default_timeout(timeout)
            page = await context.new_page()
            await page.goto(server.base + "/")  # a browser at the root is sent to the admin UI
            await expect(page).to_have_url(server.base + "/admin/login")
            await page.fill("#key", server.key)
            await page.click("button:has-text('Sign in')")
            await expect(page).to_have_url(server.base + "/admin/tools")
            cookies = await context.cookies()
            assert [c["httpOnly"] for c in cookies] == [True]
            assert server.key not in json.dumps(cookies)

            await page.fill("#q", "look up an order")
            await page.click("button:has-text('Search')")
            await page.click("a:has-text('shop.get_order')")
            await expect(page.locator("h1")).to_have_text("shop.get_order")
            await page.fill("#arguments", '{"id": "o-7"}')
            await page.click("button:has-text('Call shop.get_order')")
            result = page.locator("pre.result")
            await expect(result).to_contain_text('"item": "<b>book</b>"')  # shown as text, not markup
            request_id = await page.locator("code.request-id").inner_text()
            assert [r[1] for r in upstream.requests] == ["/orders/o-7"]

            await page.click("nav >> text=Call log")
            row = page.locator("table.calls tbody tr").first
            await expect(row).to_contain_text("shop.get_order")
            await expect(row).to_contain_text("ok")
            await expect(row).to_contain_text(request_id)

            await page.click("button:has-text('Sign out')")
            await expect(page).to_have_url(server.base + "/admin/login")
            await page.goto(server.base + "/admin/calls")
            await expect(page).to_have_url(server.base + "/admin/login")
            await context.close()


CLIENT_SECRET = "CANARYclient-admin-ui-4d1f"


def _configure_oauth(folder: Path, provider: str, base: str) -> Path:
    from tests.e2e.test_secret_canaries import BEARER, spec

    (folder / "echo.json").write_text(json.dumps(spec(BEARER)))
    host = provider.removeprefix("http://")
    config = {
        "providers": {
            "up": {
                "display_name": "Echo",
                "authorize_url": f"{provider}/authorize",
                "token_url": f"{provider}/token",
                "pkce": True,
                "scope_separator": " ",
                "refresh": {"supported": True, "rotates": True},
                "token_auth_method": "client_secret_basic",
            }
        },
        "connectors": {
            "echo": {
                "kind": "openapi",
                "spec": "echo.json",
                "base_url": provider,
                "allow_hosts": [host],
                "connections": {
                    "scheme": "oauth2",
                    "provider": "up",
                    "client_id": "tb-oauth",
                    "client_secret": "env:ADMIN_UI_CLIENT_SECRET",
                    "redirect_uri": f"{base}/v1/connections/callback",
                },
            }
        },
        "agents": {"assistant": {"scopes": ["*"]}},
    }
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


async def test_the_connect_button_goes_through_the_providers_consent_and_back(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    from tests.e2e.test_secret_canaries import upstream
    from tests.e2e.test_serve import free_port

    expect.set_options(timeout=patience(30) * 1000)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with upstream(tmp_path, {"tb-oauth": CLIENT_SECRET}) as provider:
        config = _configure_oauth(tmp_path, provider.a, base)
        master = base64.b64encode(secrets.token_bytes(32)).decode()
        env = {"ADMIN_UI_CLIENT_SECRET": CLIENT_SECRET, "TOOLBRIDGE_MASTER_KEY": master}
        with serving(config, tmp_path, env=env, port=port) as server:
            context = await browser.new_context()
            context.set_default_timeout(patience(30) * 1000)
            page = await context.new_page()
            await page.goto(server.base + "/admin/login")
            await page.fill("#key", server.key)
            await page.click("button:has-text('Sign in')")
            await page.click("nav >> text=Connections")
            await page.select_option("#connector", "echo")
            await page.fill("#account", "alice")
            await page.click("button:has-text('Connect')")
            # the provider approves at once and sends the browser back to the callback
            await expect(page.locator("body")).to_contain_text("Connected echo as alice")
            assert page.url.startswith(server.base + "/v1/connections/callback")
            await page.goto(server.base + "/admin/connections")
            row = page.locator("table.connections tbody tr").first
            await expect(row).to_contain_text("alice")
            await expect(row).to_contain_text("active")
            pages = [await page.content()]
            await page.goto(server.base + "/admin/tools/echo.echo")
            await page.fill("#arguments", '{"q": "hello"}')
            await page.click("button:has-text('Call echo.echo')")
            await expect(page.locator("pre.result")).to_contain_text("hello")
            await page.goto(server.base + "/admin/calls")
            pages.append(await page.content())
            await context.close()
    tokens = provider.issued()
    assert tokens, "the provider issued no token"
    for text in pages:
        assert CLIENT_SECRET not in text and not any(t in text for t in tokens)
