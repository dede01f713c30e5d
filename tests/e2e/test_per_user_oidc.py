"""Per-user connections against a real OpenID provider (oidc-provider on 127.0.0.1): two people, Alice and
Bob, sign in at the same provider; each agent's calls go out with its own person's token, which the
provider's userinfo endpoint (the upstream here) resolves to that person."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.e2e.oidc import CLIENT_SECRET, OidcServer, authorize, oidc_server, write_config
from toolbridge import Hub, Principal
from toolbridge.credentials import ConnectFlow, KeyFile
from toolbridge.errors import ConnectRequired

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]
AGENTS = {"alice": Principal.agent("alice-bot", ["api.*"]), "bob": Principal.agent("bob-bot", ["api.*"])}


@pytest.fixture
def oidc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcServer]:
    with oidc_server(tmp_path) as server:
        monkeypatch.setenv("TB_TEST_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("TB_TEST_USERINFO", f"{server.issuer}/me")
        yield server


async def test_two_people_each_agent_calls_with_its_persons_token(oidc: OidcServer, tmp_path: Path) -> None:
    KeyFile(tmp_path / "master.key").create()
    database = f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    async with Hub.from_file(write_config(tmp_path, oidc, database, policy="per_user")) as hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        ids = {}
        for person, agent in AGENTS.items():
            with pytest.raises(ConnectRequired):  # before the person connected
                await hub.call(agent, "api.whoami")
            started = await flow.start("api", owner=agent.id, actor=agent.id)
            ids[person] = (
                await flow.complete(await authorize(started.url, oidc.redirect_uri, login=person))
            ).id
        for person, agent in [*AGENTS.items(), *AGENTS.items()]:
            assert (await hub.call(agent, "api.whoami")).value["sub"] == person  # checked at the upstream
        with pytest.raises(ConnectRequired):  # Alice's agent cannot name Bob's connection
            await hub.call(AGENTS["alice"], "api.whoami", connection=ids["bob"])
        with pytest.raises(ConnectRequired):
            await hub.call(Principal.agent("carol-bot", ["api.*"]), "api.whoami")
        owners = {c.id: c.owner for c in await hub.credentials.store.find("api")}
        assert owners == {ids["alice"]: "agent:alice-bot", ids["bob"]: "agent:bob-bot"}


async def test_an_operator_connects_an_agents_account_from_the_cli_on_a_loopback_redirect(
    oidc: OidcServer, tmp_path: Path
) -> None:
    """The docs' per-user connector has the server's callback as its redirect_uri, which ``toolbridge connect
    … --for`` refused (not loopback) with no way to give another: ``--redirect-uri`` is that way."""
    KeyFile(tmp_path / "master.key").create()
    config = write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}", policy="per_user")
    doc = json.loads(config.read_text())
    doc["connectors"]["api"]["connections"]["redirect_uri"] = "https://tb.example.com/v1/connections/callback"
    doc["agents"] = {"alice-bot": {"scopes": ["api.*"]}}
    config.write_text(json.dumps(doc))
    command = [sys.executable, "-m", "toolbridge", "connect", "api", "--for", "alice-bot", "-c", str(config)]
    command += ["--redirect-uri", oidc.redirect_uri, "--wait", str(patience(60))]
    async with await anyio.open_process(command, cwd=tmp_path) as process:
        assert process.stdout is not None
        printed = b""
        with anyio.fail_after(patience(60)):
            while b"\nhttp" not in printed or not printed.endswith(b"\n"):
                printed += await process.stdout.receive()
            url = next(line for line in printed.decode().splitlines() if line.startswith("http"))
            callback = await authorize(url, oidc.redirect_uri, login="alice")
            async with httpx2.AsyncClient(trust_env=False) as browser:
                page = await browser.get(callback)
            assert await process.wait() == 0
        rest = b"".join([chunk async for chunk in process.stdout])
    assert page.status_code == 200 and "Connected api as default" in page.text
    assert "connected api as default" in (printed + rest).decode()
    async with Hub.from_file(config) as hub:
        assert hub.credentials is not None
        assert [c.owner for c in await hub.credentials.store.find("api", owner="agent:alice-bot")] == [
            "agent:alice-bot"
        ]
        assert (await hub.call(Principal.agent("alice-bot", ["api.*"]), "api.whoami")).value["sub"] == "alice"
