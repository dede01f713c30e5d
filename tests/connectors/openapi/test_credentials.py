"""OpenAPI tools with connections from the credentials layer, against a real upstream on 127.0.0.1.

The upstream (Starlette under uvicorn, in a thread) serves a client-credentials token endpoint, an API
that wants a bearer token from it, and an API that wants an API key in ``X-API-Key``. toolbridge is built
from a ``toolbridge.yaml`` with two OpenAPI connectors; their connections live in the vault (encrypted)
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner, Result

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub, Principal
from toolbridge.cli import app as cli_app
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.credentials import Keyring, MasterKey, Material, Secret, StaticKeys
from toolbridge.errors import ConfigurationError, CredentialsError, ToolbridgeError
from toolbridge.settings import parse_settings

pytestmark = pytest.mark.anyio

CLIENT_ID = "toolbridge-test"
LOCAL = Principal.local()


@dataclass
class Upstream:
    """Issues opaque tokens for client credentials; the API accepts only live ones."""

    client_secret: str = field(default_factory=lambda: "cs-" + secrets.token_hex(12))
    api_key: str = field(default_factory=lambda: "key-" + secrets.token_hex(12))
    live: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    token_requests: int = 0
    seen: list[str | None] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke(self) -> None:
        self.live.clear()

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        client_id, client_secret = _client(request, dict(form))
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if (client_id, client_secret) != (CLIENT_ID, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        access = "at-" + secrets.token_hex(12)
        self.live.add(access)
        self.issued.append(access)
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 3600})

    async def items(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        self.seen.append(header or None)
        if header.removeprefix("Bearer ") not in self.live:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"items": [1, 2, 3]})

    async def keyed(self, request: Request) -> Response:
        key = request.headers.get("x-api-key")
        self.seen.append(key)
        if key != self.api_key:
            return JSONResponse({"error": f"bad key {key}"}, status_code=403)
        if request.query_params.get("echo"):  # an upstream that echoes what it was sent
            return JSONResponse({"you_sent": key, "public": False})
        return JSONResponse({"ok": True})

    async def public(self, request: Request) -> Response:
        self.seen.append(request.headers.get("x-api-key"))
        return JSONResponse({"public": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/items", self.items),
                Route("/keyed", self.keyed),
                Route("/public", self.public),
            ]
        )


def _client(request: Request, form: dict[str, Any]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password
    return form.get("client_id"), form.get("client_secret")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    served = Upstream()
    sock = loopback_socket()
    served.port = sock.getsockname()[1]
    with uvicorn_thread(served.app(), sock):
        yield served


def _document(upstream: Upstream, scheme: dict[str, Any], path: str) -> dict[str, Any]:
    get = {"responses": {"200": {"description": "ok"}}}
    echo = {"name": "echo", "in": "query", "required": False, "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": upstream.url}],
        "security": [{"main": []}],
        "components": {"securitySchemes": {"main": scheme}},
        "paths": {
            path: {"get": {**get, "operationId": "fetch", "parameters": [echo]}},
            "/public": {"get": {**get, "operationId": "open", "security": []}},
        },
    }


def _oauth_scheme(upstream: Upstream) -> dict[str, Any]:
    flows = {"clientCredentials": {"tokenUrl": f"{upstream.url}/token", "scopes": {}}}
    return {"type": "oauth2", "flows": flows}


KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    (tmp_path / name).write_text(json.dumps(doc))
    return name


def _settings(tmp_path: Path, database_url: str, upstream: Upstream, *, keyed: str, svc: str) -> Path:
    config = f"""
server: {{database: "{database_url}"}}
providers:
  local:
    display_name: Local
    scope_separator: " "
    authorize_url: {upstream.url}/authorize
    token_url: {upstream.url}/token
connectors:
  svc:
    kind: openapi
    spec: {_write(tmp_path, "svc.json", _document(upstream, _oauth_scheme(upstream), "/items"))}
    connections: {svc}
  keyed:
    kind: openapi
    spec: {_write(tmp_path, "keyed.json", _document(upstream, KEY_SCHEME, "/keyed"))}
    auth: {{main: env:TB_TEST_WRONG_KEY}}
    connections: {keyed}
"""
    path = tmp_path / "toolbridge.yaml"
    path.write_text(config)
    return path


CC = (
    "{scheme: client_credentials, provider: local, client_id: toolbridge-test, client_secret: env:TB_TEST_CS}"
)


def _hub(path: Path, *, keyed: str = "{scheme: api_key, name: X-API-Key}") -> Hub:
    settings = parse_settings(path.read_text().replace("KEYED_CONNECTION", keyed), source=path)
    return Hub.from_settings(settings, keys=StaticKeys(Keyring(MasterKey.generate())))


@pytest.fixture
async def hub(
    tmp_path: Path, database_url: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hub]:
    monkeypatch.setenv("TB_TEST_CS", upstream.client_secret)
    monkeypatch.setenv("TB_TEST_WRONG_KEY", "env-key-that-loses")
    path = _settings(tmp_path, database_url, upstream, keyed="KEYED_CONNECTION", svc=CC)
    built = _hub(path)
    async with built:
        assert built.credentials is not None
        await built.credentials.add("svc", "default", Material())
        await built.credentials.add("keyed", "default", Material(secret=Secret(upstream.api_key)))
        yield built


async def test_calls_use_the_connection_and_never_show_its_secrets(
    hub: Hub, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    assert (await hub.call(LOCAL, "svc.fetch")).value == {"items": [1, 2, 3]}
    assert upstream.seen[-1] == f"Bearer {upstream.issued[0]}"
    assert (await hub.call(LOCAL, "keyed.fetch")).value == {"ok": True}
    assert upstream.seen[-1] == upstream.api_key, "the connection wins over auth: env:"
    echoed = await hub.call(LOCAL, "keyed.fetch", {"echo": "1"})
    assert echoed.value["you_sent"] == "[redacted]"
    seen.append(echoed.text)
    assert (await hub.call(LOCAL, "keyed.open")).value == {"public": True}
    assert upstream.seen[-1] is None, "an operation the document marks public gets no credentials"
    assert upstream.token_requests == 1
    await _assert_no_secret(hub, upstream, caplog, seen)


async def test_a_401_refreshes_once_and_the_retry_succeeds(hub: Hub, upstream: Upstream) -> None:
    await hub.call(LOCAL, "svc.fetch")
    upstream.revoke()  # the API no longer accepts the cached token
    result = await hub.call(LOCAL, "svc.fetch")
    assert result.value == {"items": [1, 2, 3]}
    assert upstream.token_requests == 2, "exactly one refresh after the 401"
    assert upstream.seen[-2:] == [f"Bearer {upstream.issued[0]}", f"Bearer {upstream.issued[1]}"]
    await hub.audit.flush()
    assert any(r.entry.tool == "(credentials.refresh)" for r in await hub.audit.tail(100))


async def test_an_upstream_error_does_not_carry_the_secret(
    hub: Hub, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert hub.credentials is not None
    wrong = "key-" + secrets.token_hex(12)
    await hub.credentials.add("keyed", "default", Material(secret=Secret(wrong)))
    with pytest.raises(ToolbridgeError) as caught:
        await hub.call(LOCAL, "keyed.fetch")
    text = json.dumps(caught.value.extra(), default=str) + str(caught.value) + (caught.value.hint or "")
    assert wrong not in text and "[redacted]" in text
    await hub.audit.flush()
    audit = json.dumps([r.as_dict() for r in await hub.audit.tail(100)], default=str)
    assert wrong not in audit and wrong not in caplog.text


async def _assert_no_secret(
    hub: Hub, upstream: Upstream, caplog: pytest.LogCaptureFixture, seen: list[str]
) -> None:
    await hub.audit.flush()
    audit = json.dumps([r.as_dict() for r in await hub.audit.tail(100)], default=str)
    corpus = "\n".join([caplog.text, audit, *seen])
    for value in [upstream.api_key, upstream.client_secret, *upstream.issued]:
        assert value not in corpus


async def test_a_connection_of_the_wrong_kind_is_refused(
    tmp_path: Path, sqlite_url: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_TEST_CS", upstream.client_secret)
    path = _settings(tmp_path, sqlite_url, upstream, keyed="KEYED_CONNECTION", svc=CC)
    with pytest.raises(ConfigurationError) as caught:
        _hub(path, keyed="{scheme: basic, username: me}")
    message = f"{caught.value.message} {caught.value.hint}"
    assert "connectors.keyed.connections" in message and "'main'" in message
    assert "API key in header 'X-API-Key'" in message and "api_key" in message
    with pytest.raises(ConfigurationError, match="name='X-Key'"):
        _hub(path, keyed="{scheme: api_key, name: X-Key}")


def test_the_scheme_mapping(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
                "oidc": {"type": "openIdConnect", "openIdConnectUrl": "http://127.0.0.1:9/.well-known"},
            }
        },
        "paths": {
            "/a": {"get": {"security": [{"basic": []}], "responses": {"200": {"description": "ok"}}}},
            "/b": {"get": {"security": [{"cookie": []}], "responses": {"200": {"description": "ok"}}}},
            "/c": {"get": {"security": [{"oidc": []}], "responses": {"200": {"description": "ok"}}}},
        },
    }
    connector = OpenAPIConnector.from_spec("api", tmp_path / _write(tmp_path, "doc.json", doc))
    kinds = {n.scheme: n.kinds for n in connector.credential_needs()}
    assert kinds == {
        "basic": {"basic", "header"},
        "cookie": {"api_key"},
        "oidc": {"bearer", "oauth2", "client_credentials", "jwt_bearer"},
    }
    connector.check_connection("oauth2")
    connector.check_connection("api_key", name="sid", location="cookie")
    with pytest.raises(ConfigurationError, match="sigv4"):
        connector.check_connection("sigv4")
    with pytest.raises(ConfigurationError):
        connector.check_connection("api_key", name="sid", location="header")


def test_the_cli_adds_a_fitting_connection_and_names_the_scheme_of_a_misfit(
    in_tmp_dir: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLBRIDGE_MASTER_KEY", raising=False)
    env = {"TB_TEST_CS": upstream.client_secret, "TB_TEST_KEY": upstream.api_key}
    db = f"sqlite+aiosqlite:///{in_tmp_dir / 'tb.db'}"
    path = _settings(in_tmp_dir, db, upstream, keyed="KEYED_CONNECTION", svc=CC)
    template = path.read_text()
    runner = CliRunner()

    def cli(keyed: str, *args: str) -> Result:
        path.write_text(template.replace("KEYED_CONNECTION", keyed))
        return runner.invoke(cli_app, [*args, "--config", str(path)], env=env)

    good = "{scheme: api_key, name: X-API-Key}"
    assert cli(good, "keys", "init").exit_code == 0
    added = cli(good, "connections", "add", "keyed", "--secret", "env:TB_TEST_KEY")
    assert added.exit_code == 0, added.output
    assert upstream.api_key not in added.output
    misfit = cli("{scheme: bearer}", "connections", "add", "keyed", "--secret", "env:TB_TEST_KEY")
    assert misfit.exit_code == 1
    assert "bearer connection fits none" in misfit.output and "'main'" in misfit.output


async def test_without_a_connection_the_env_secret_still_works(
    tmp_path: Path, sqlite_url: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_TEST_CS", upstream.client_secret)
    monkeypatch.setenv("TB_TEST_WRONG_KEY", upstream.api_key)  # here the env secret is the right one
    path = _settings(tmp_path, sqlite_url, upstream, keyed="KEYED_CONNECTION", svc=CC)
    path.write_text(path.read_text().replace("    connections: KEYED_CONNECTION\n", ""))
    async with _hub(path) as built:
        assert (await built.call(LOCAL, "keyed.fetch")).value == {"ok": True}
    assert upstream.seen == [upstream.api_key]


async def test_an_operation_the_connection_does_not_fit_is_refused_before_sending(
    tmp_path: Path, sqlite_url: str, upstream: Upstream
) -> None:
    """Discord's shape: a bot token (apiKey in a header) for most operations, OAuth 2 only for a few. The
    bot token went to those too, the upstream answered 401, and toolbridge advised reconnecting an
    account whose secret was fine."""
    document = _document(upstream, KEY_SCHEME, "/keyed")
    document["components"]["securitySchemes"]["user"] = _oauth_scheme(upstream)
    ok = {"200": {"description": "ok"}}
    mine = {"operationId": "mine", "security": [{"user": []}], "responses": ok}
    document["paths"]["/items"] = {"get": mine}
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        f"""
server: {{database: "{sqlite_url}"}}
connectors:
  mixed:
    kind: openapi
    spec: {_write(tmp_path, "mixed.json", document)}
    connections: {{scheme: api_key, name: X-API-Key}}
"""
    )
    async with _hub(config) as hub:
        assert hub.credentials is not None
        await hub.credentials.add("mixed", "default", Material(secret=Secret(upstream.api_key)))
        assert (await hub.call(LOCAL, "mixed.fetch")).value == {"ok": True}
        with pytest.raises(CredentialsError) as refused:
            await hub.call(LOCAL, "mixed.mine")
    assert upstream.seen == [upstream.api_key], "the key never went to /items"
    assert str(refused.value).startswith("GET /items takes no api_key connection, only: user (OAuth 2")
    assert "whose connections fit one of those schemes" in str(refused.value.hint)
