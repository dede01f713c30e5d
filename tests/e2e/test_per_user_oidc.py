"""Per-user connections against a real OpenID provider (oidc-provider on 127.0.0.1): two people, Alice and
Bob, sign in at the same provider; each agent's calls go out with its own person's token, which the
provider's userinfo endpoint (the upstream here) resolves to that person."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
