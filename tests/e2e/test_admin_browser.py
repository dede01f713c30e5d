"""The admin UI in a real browser (Chromium driven by Playwright) against `toolbridge serve` and a real
upstream on 127.0.0.1: sign in, search a tool, try it, find the call in the call log, sign out.

Chromium is the system's (``/usr/bin/chromium``; ``make test`` installs it with apt-get when it can):
Playwright's own browser download is never used. Without it the test skips, or fails under
TOOLBRIDGE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
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
