"""Connections over REST (/v1/connections) and the CLI (keys, connections)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx2
import pytest
from typer.testing import CliRunner

from tests.credentials.fakes import FakeAuthServer, api_tool, oauth_config
from toolbridge import Hub
from toolbridge.cli import app as cli_app
from toolbridge.credentials import AuthConfig, CredentialManager, Keyring, MasterKey, StaticKeys, Vault
from toolbridge.resilience import Resilience
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio
BASE = "http://toolbridge.test"
CALLBACK = f"{BASE}/v1/connections/callback"


@dataclass
class Served:
    hub: Hub
    http: httpx2.AsyncClient
    server: FakeAuthServer
    keys: dict[str, str]

    def auth(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    server = FakeAuthServer()
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler))
    bindings = {
        "gh": oauth_config(redirect_uri=CALLBACK, probe_url="https://api.test/me", policy="per_user"),
        "svc": AuthConfig(scheme="api_key", name="X-Key"),
        "bare": oauth_config(),  # no redirect_uri configured: the request must name one
    }
    hub = Hub(agents={"admin": ["*"], "ghuser": ["gh.*"], "reader": ["*:read"]}, resilience=Resilience())
    hub.credentials = CredentialManager(
        Vault(hub.database, StaticKeys(Keyring(MasterKey.generate()))), bindings, client=client
    )
    hub.credentials.audit = hub.audit
    for connector in bindings:
        hub.tool(api_tool(client), connector=connector, name="me", read_only=True)
    web = create_app(hub, max_body_bytes=10_000)
    async with web.router.lifespan_context(web), client:
        keys = {name: await hub.agents.create(name) for name in ("admin", "ghuser", "reader")}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url=BASE) as http:
            yield Served(hub, http, server, keys)


async def test_rest_add_list_test_remove(served: Served) -> None:
    http = served.http
    added = await http.post(
        "/v1/connections",
        json={"connector": "svc", "account": "bot", "secret": "canary-key-1"},
        headers=served.auth(),
    )
    assert added.status_code == 201, added.text
    doc = added.json()
    assert doc["state"] == "active" and doc["scheme"] == "api_key" and "canary" not in added.text
    listed = await http.get("/v1/connections", headers=served.auth())
    assert [c["id"] for c in listed.json()["connections"]] == [doc["id"]]
    assert (await http.get("/v1/connections", headers=served.auth("ghuser"))).json() == {"connections": []}
    hidden = await http.get(f"/v1/connections/{doc['id']}", headers=served.auth("ghuser"))
    assert hidden.status_code == 404
    missing = await http.get("/v1/connections/nope", headers=served.auth())
    assert (
        missing.status_code == 404
        and hidden.json()["detail"].replace(doc["id"], "nope") == missing.json()["detail"]
    )
    anonymous = await http.get("/v1/connections")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    refused = await http.post(
        "/v1/connections", json={"connector": "svc", "secret": "x"}, headers=served.auth("reader")
    )
    assert refused.status_code == 404
    assert (await http.delete(f"/v1/connections/{doc['id']}", headers=served.auth())).status_code == 204
    assert (await http.get(f"/v1/connections/{doc['id']}", headers=served.auth())).status_code == 404


async def test_a_body_sent_without_its_json_content_type_is_told_so(served: Served) -> None:
    """curl -d sends form-urlencoded: the answer said only "body: Input should be a valid dictionary"."""
    body = json.dumps({"connector": "svc", "account": "bot", "secret": "canary-key-2"})
    headers = {**served.auth(), "content-type": "application/x-www-form-urlencoded"}
    refused = await served.http.post("/v1/connections", content=body, headers=headers)
    assert refused.status_code == 415 and refused.headers["accept-post"] == "application/json"
    assert refused.json()["hint"] == (
        "send the body as JSON with 'Content-Type: application/json' "
        "(this one said application/x-www-form-urlencoded)"
    )
    assert "canary" not in refused.text


async def test_rest_connect_flow_then_probe(served: Served) -> None:
    http = served.http
    started = await http.post(
        "/v1/connections/connect", json={"connector": "gh", "account": "alice"}, headers=served.auth("ghuser")
    )
    assert started.status_code == 200, started.text
    query = parse_qs(urlsplit(started.json()["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [CALLBACK]
    state = query["state"][0]
    bad = await http.get("/v1/connections/callback", params={"state": "forged", "code": "good-code"})
    assert bad.status_code == 400 and "unknown" in bad.text
    done = await http.get("/v1/connections/callback", params={"code": "good-code", "state": state})
    assert done.status_code == 200 and "Connected gh as alice" in done.text
    assert done.headers["x-frame-options"] == "DENY" and "at-" not in done.text
    replay = await http.get("/v1/connections/callback", params={"code": "good-code", "state": state})
    assert replay.status_code == 400 and "already used" in replay.text
    conns = (await http.get("/v1/connections", headers=served.auth("ghuser"))).json()["connections"]
    assert [(c["connector"], c["account"], c["state"]) for c in conns] == [("gh", "alice", "active")]
    tested = await http.post(f"/v1/connections/{conns[0]['id']}/test", headers=served.auth("ghuser"))
    assert tested.json() == {
        "connection": conns[0]["id"],
        "ok": True,
        "status": 200,
        "detail": "GET api.test/me → 200",
    }
    await served.hub.audit.flush()
    tools = {r.entry.tool for r in await served.hub.audit.tail(50)}
    assert {"(credentials.connect)", "(credentials.test)", "(credentials.use)"} <= tools
    outcomes = {
        (r.entry.outcome, r.entry.error_code)
        for r in await served.hub.audit.tail(50, tool="(credentials.connect)")
    }
    assert outcomes == {("ok", None), ("error", "authorization_rejected")}


async def test_rest_refuses_static_add_for_oauth(served: Served) -> None:
    response = await served.http.post(
        "/v1/connections", json={"connector": "gh", "secret": "x"}, headers=served.auth()
    )
    assert response.status_code == 400 and "/v1/connections/connect" in response.json()["hint"]


async def test_rest_without_credentials_configured() -> None:
    hub = Hub(agents={"admin": ["*"]})
    web = create_app(hub, max_body_bytes=10_000)
    async with web.router.lifespan_context(web):
        auth = {"Authorization": f"Bearer {await hub.agents.create('admin')}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url=BASE) as http:
            assert (await http.get("/v1/connections", headers=auth)).json() == {"connections": []}
            added = await http.post("/v1/connections", json={"connector": "x", "secret": "y"}, headers=auth)
            assert added.status_code == 404
            connect = await http.post("/v1/connections/connect", json={"connector": "x"}, headers=auth)
            assert connect.status_code == 404


async def test_rest_connect_refuses_a_static_scheme(served: Served) -> None:
    response = await served.http.post(
        "/v1/connections/connect", json={"connector": "svc"}, headers=served.auth()
    )
    assert response.status_code == 400 and "not OAuth 2" in response.json()["detail"]


async def test_rest_connect_without_any_redirect_uri_names_the_field(served: Served) -> None:
    """``redirect_uri`` is optional in the request when the connector configures one: without either,
    the answer was HTTP 500 configuration_error."""
    response = await served.http.post(
        "/v1/connections/connect", json={"connector": "bare"}, headers=served.auth()
    )
    assert response.status_code == 400, response.text
    assert "redirect_uri" in response.json()["detail"] and "redirect_uri" in response.json()["hint"]
    named = await served.http.post(
        "/v1/connections/connect", json={"connector": "bare", "redirect_uri": CALLBACK}, headers=served.auth()
    )
    assert named.status_code == 200, named.text


# -- CLI -----------------------------------------------------------------------------------------

CONFIG = """
server: {database: "sqlite+aiosqlite:///tb.db"}
connectors:
  svc:
    kind: python
    module_path: .
    tools: [{function: "svc_tools:ping", read_only: true}]
    connections: {scheme: api_key, name: X-Key, probe_url: "http://127.0.0.1:9/never"}
"""


@pytest.fixture
def cli(in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)
    (in_tmp_dir / "svc_tools.py").write_text("def ping() -> str:\n    return 'pong'\n")
    monkeypatch.delenv("TOOLBRIDGE_MASTER_KEY", raising=False)
    runner = CliRunner()
    return lambda *args, env=None: runner.invoke(cli_app, list(args), env=env)


def test_cli_keys_and_connections(cli, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    init = cli("keys", "init")
    assert init.exit_code == 0, init.output
    key_file = in_tmp_dir / ".toolbridge" / "master.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    again = cli("keys", "init")
    assert again.exit_code == 1 and "already exists" in again.output

    added = cli(
        "connections",
        "add",
        "svc",
        "--account",
        "bot",
        "--secret",
        "env:SVC_KEY",
        env={"SVC_KEY": "canary-cli-7"},
    )
    assert added.exit_code == 0, added.output
    assert "svc as bot (shared)" in added.output
    personal = cli(
        "connections", "add", "svc", "--for", "alice", "--secret", "env:SVC_KEY", env={"SVC_KEY": "k"}
    )
    assert personal.exit_code == 1 and "policy: shared" in personal.output  # it would never be used
    listed = cli("connections", "list", "--json")
    docs = json_lines(listed.stdout)  # one object per line, as every --json listing
    assert [(d["connector"], d["account"], d["state"]) for d in docs] == [("svc", "bot", "active")]
    assert "canary-cli-7" not in listed.output + added.output

    tested = cli("connections", "test", docs[0]["id"])
    assert tested.exit_code == 1 and "upstream_unavailable" in tested.output

    rotated = cli("keys", "rotate", "--settle", "0")
    assert rotated.exit_code == 0 and "1 data keys re-wrapped" in rotated.output
    assert json_lines(cli("connections", "list", "--json").stdout)[0]["id"] == docs[0]["id"]
    rows = [json.loads(line) for line in cli("audit", "tail", "--json", "-n", "50").stdout.splitlines()]
    assert {"(credentials.add)", "(credentials.rotate)"} <= {r["tool"] for r in rows}

    removed = cli("connections", "remove", docs[0]["id"])
    assert removed.exit_code == 0
    assert json_lines(cli("connections", "list", "--json").stdout) == []


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_cli_master_key_from_the_environment(cli) -> None:  # type: ignore[no-untyped-def]
    env = {"TOOLBRIDGE_MASTER_KEY": MasterKey.generate().encoded(), "SVC_KEY": "k"}
    assert cli("connections", "add", "svc", "--secret", "env:SVC_KEY", env=env).exit_code == 0
    other = cli("connections", "list", env={"TOOLBRIDGE_MASTER_KEY": MasterKey.generate().encoded()})
    assert other.exit_code == 0  # listing reads no secret
    wrong = cli("connections", "test", "x", env={"TOOLBRIDGE_MASTER_KEY": "bad"})
    assert wrong.exit_code == 1 and "base64" in wrong.output


def test_cli_refuses_a_shared_connection_the_configured_secret_would_shadow(  # type: ignore[no-untyped-def]
    cli, in_tmp_dir: Path
) -> None:
    """It printed "active" and was never used: the upstream kept getting the secret of 'secret: env:…'
    (found by an outside probe following a reconnect hint)."""
    config = in_tmp_dir / "toolbridge.yaml"
    config.write_text(CONFIG.replace('probe_url: "http://127.0.0.1:9/never"', "secret: env:SVC_CONFIGURED"))
    cli("keys", "init")
    added = cli("connections", "add", "svc", "--secret", "env:SVC_KEY", env={"SVC_KEY": "k"})
    assert added.exit_code == 1, added.output
    assert "configured in toolbridge.yaml (secret: env:SVC_CONFIGURED)" in added.output
    assert "change env:SVC_CONFIGURED and restart toolbridge" in added.output


def test_cli_connect_refuses_non_oauth(cli) -> None:  # type: ignore[no-untyped-def]
    cli("keys", "init")
    result = cli("connect", "svc")
    assert result.exit_code == 1 and "no connect flow" in result.output


def test_cli_rewrap_with_environment_keys(cli) -> None:  # type: ignore[no-untyped-def]
    """The TOOLBRIDGE_MASTER_KEY flow: secrets stored with the old key, servers given the new one (the old in
    …_PREVIOUS), ``keys rewrap``: every data key re-wrapped, the fence moved (a process still on the old
    key alone is refused a write, saying why), one audit row."""
    old, new = MasterKey.generate().encoded(), MasterKey.generate().encoded()
    added = cli(
        "connections", "add", "svc", "--account", "bot", "--secret", "env:SVC_KEY",
        env={"SVC_KEY": "k", "TOOLBRIDGE_MASTER_KEY": old},
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    both = {"TOOLBRIDGE_MASTER_KEY": new, "TOOLBRIDGE_MASTER_KEY_PREVIOUS": old}
    rewrapped = cli("keys", "rewrap", env=both)
    assert rewrapped.exit_code == 0 and "1 data keys re-wrapped" in rewrapped.output, rewrapped.output
    listed = cli("connections", "list", "--json", env={"TOOLBRIDGE_MASTER_KEY": new})
    assert [d["account"] for d in json_lines(listed.stdout)] == ["bot"]
    stale = cli(
        "connections", "add", "svc", "--account", "other", "--secret", "env:SVC_KEY",
        env={"SVC_KEY": "k", "TOOLBRIDGE_MASTER_KEY": old},
    )  # fmt: skip
    assert stale.exit_code == 1 and "this process does not have that key" in stale.output, stale.output
    listed = cli("connections", "list", "--json", env={"TOOLBRIDGE_MASTER_KEY": new})
    assert [d["account"] for d in json_lines(listed.stdout)] == ["bot"], "the refused add left nothing"
    rows = [json.loads(line) for line in cli("audit", "tail", "--json", "-n", "50").stdout.splitlines()]
    assert [r["tool"] for r in rows].count("(credentials.rewrap)") == 1


PER_USER = """
server: {database: "sqlite+aiosqlite:///tb.db"}
providers:
  corp: {display_name: Corp, scope_separator: " ", authorize_url: "https://sso.corp.test/authorize",
         token_url: "https://sso.corp.test/token"}
connectors:
  api:
    kind: python
    module_path: .
    tools: [{function: "svc_tools:ping", read_only: true}]
    connections: {scheme: oauth2, provider: corp, client_id: tb, policy: per_user,
                  redirect_uri: "https://toolbridge.corp.test/v1/connections/callback"}
  keyed:
    kind: python
    module_path: .
    tools: [{function: "svc_tools:ping", name: keyed_ping, read_only: true}]
    connections: {scheme: api_key, name: X-Key, policy: per_user}
agents:
  alice-bot: {scopes: ["api.*", "keyed.*"]}
"""


def test_cli_refuses_a_connection_for_an_agent_that_does_not_exist(  # type: ignore[no-untyped-def]
    cli, in_tmp_dir: Path
) -> None:
    """``connect … --for alise-bot`` (a typo) started the flow and stored a connection nobody would ever use;
    ``connections add --for`` too (found by an outside OAuth probe)."""
    (in_tmp_dir / "toolbridge.yaml").write_text(PER_USER)
    cli("keys", "init")
    for args in (["connect", "api", "--wait", "1"], ["connections", "add", "keyed", "--secret", "env:K"]):
        typo = cli(*args, "--for", "alise-bot", env={"K": "k"})
        assert typo.exit_code == 1, typo.output
        assert "there is no agent 'alise-bot' (agents: alice-bot)" in typo.output
        assert (
            "did you mean 'alice-bot'?" in typo.output and "toolbridge agents create alise-bot" in typo.output
        )
        assert "http" not in typo.stdout, "no flow started"
    stranger = cli("connect", "api", "--for", "user:alice", "--wait", "1")
    assert stranger.exit_code == 1 and "names no principal" in stranger.output
    assert json_lines(cli("connections", "list", "--json").stdout) == []


def test_cli_connect_takes_a_redirect_uri_and_says_when_its_port_is_taken(  # type: ignore[no-untyped-def]
    cli, in_tmp_dir: Path
) -> None:
    """A per-user connector's redirect_uri is the server's callback (the docs' example): the CLI refused it
    as not loopback and had no option to give another. When it was the running server's own port, the CLI
    said "Address already in use; hint: check the path or permission named above"."""
    (in_tmp_dir / "toolbridge.yaml").write_text(PER_USER)
    cli("keys", "init")
    refused = cli("connect", "api", "--for", "alice-bot", "--wait", "1")
    assert refused.exit_code == 1 and "is not a loopback URL" in refused.output
    assert "--redirect-uri" in refused.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("connect", "api", "--for", "alice-bot", "--redirect-uri", f"http://127.0.0.1:{port}/cb")
    assert busy.exit_code == 1, busy.output
    assert f"cannot wait for the callback of http://127.0.0.1:{port}/cb on 127.0.0.1:{port}" in busy.output
    assert "--redirect-uri http://127.0.0.1:FREE_PORT/callback" in busy.output
    free = f"http://127.0.0.1:{port}/cb"  # released: the flow starts there and waits for its callback
    waited = cli("connect", "api", "--for", "alice-bot", "--redirect-uri", free, "--wait", "0.5")
    assert f"redirect_uri={quote(free, safe='')}" in waited.stdout, waited.output
    assert waited.exit_code == 1 and "no callback arrived within 0.5 s" in waited.output
