"""Secret canaries, judged from outside: a distinct random canary in every kind of credential toolbridge
holds, a real ``toolbridge serve`` process logging at DEBUG, real upstream processes that echo every
header, URL, body and environment variable they get — in their errors and logs too — and then a scan of
everything on toolbridge's side.

Credentials: API keys in a header (added with the CLI), a query parameter and a cookie (over REST), a bearer
token (a config reference), a basic password (its user name is no secret), a header template, OAuth 2
client secrets (authorization code with client_secret_basic, client credentials with client_secret_post)
and every access and refresh token the upstream's token endpoint issues, AWS SigV4 keys (the secret access
key, which only signs, and the session token, which is sent), JWT bearer service-account keys (one in a
connection, one in a configured key file signing per-caller assertions; every signed assertion too),
per-user connections (an API key and an OAuth connection of each of two agents), a stdio MCP server's
environment (an env: value and a connection:secret), the vault's master key, both agents' API keys, an
inbound webhook's secret and an outbound webhook's signing secret.

Scenario, over REST, MCP (both protocol eras) and the CLI: connect OAuth (shared, and per user), call every
connector's tools as the operator agent and the per-user ones as a second agent — an echo, 401/403/422/500
errors that echo the request, a redirect and a next page on a foreign origin, MCP upstreams echoing their
request headers (HTTP: a connection's token, a static env: header) or their environment (stdio, which
also prints it on stdout and stderr, and once crashes), a 401 that makes the OAuth connection refresh, a
refresh and a JWT assertion the token endpoint refuses while echoing them and the client secret — probe
connections, send signed and unsigned webhooks, deliver a signed outbound one, and read connections,
calls, audit and events back.

Scanned, for each canary in many encodings (tests/_leaks.encoded): the DEBUG log of every toolbridge
process, stdout and stderr of every process, every REST, MCP and CLI answer, the database while the server
runs and after — the SQLite files (main, WAL, SHM) as bytes, or a plain dump (``COPY … TO STDOUT``) of
every PostgreSQL table and the write-ahead log the server wrote meanwhile (tests/_leaks.postgres_wal: a
row written and later changed is still there) — and every request the foreign origin received. Expected:
nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests._leaks import assert_absent, database_files, encoded, postgres_dump, postgres_wal
from tests._patience import patience
from tests._serving import module_server
from tests.e2e.test_serve import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
ROOT = Path(__file__).parents[2]
LEGACY, MODERN = "2025-11-25", "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "canaries", "version": "1"},
}
FAILURES = (401, 403, 422, 500)
AGENT = ("--create-agent", "assistant")
BASIC_USER = "alice-accounts"
"""A basic connection's user name: no secret (only its password is masked), so no canary."""


def canary(kind: str) -> str:
    return f"CANARY{kind}{secrets.token_hex(8)}"


@dataclass
class Canaries:
    """Every planted secret, by kind; the webhook secrets and the master key also as the bytes they carry."""

    values: dict[str, str] = field(default_factory=dict)
    raw: list[bytes] = field(default_factory=list)

    def plant(self, kind: str, value: str | None = None) -> str:
        self.values[kind] = value or canary(kind)
        return self.values[kind]

    def key(self, kind: str, size: int, prefix: str = "") -> str:
        raw = secrets.token_bytes(size)
        self.raw.append(raw)
        return self.plant(kind, prefix + base64.b64encode(raw).decode())

    def service_account(self, kind: str, path: Path, token_uri: str) -> None:
        """A service-account key file at ``path`` with a new RSA key; planted: a line of its PEM (in every
        text form of the key) and its DER bytes."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs8, none = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        pem = key.private_bytes(serialization.Encoding.PEM, pkcs8, none).decode()
        self.raw.append(key.private_bytes(serialization.Encoding.DER, pkcs8, none))
        self.plant(kind, pem.splitlines()[5])
        account = {"type": "service_account", "client_email": f"{kind}@corp.example", "private_key": pem}
        path.write_text(json.dumps({**account, "private_key_id": kind, "token_uri": token_uri}))


@dataclass
class Upstream:
    a: str
    b: str
    events: Path

    def requests(self, origin: str) -> list[dict[str, Any]]:
        return [e for e in self._events() if e["kind"] == "request" and e["origin"] == origin]

    def issued(self) -> list[str]:
        return [t for e in self._events() if e["kind"] == "issued" for t in e["tokens"]]

    def _events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events.read_text().splitlines()]


@contextmanager
def mcp_upstream() -> Iterator[str]:
    """tests/e2e/echo_mcp_server.py on a free port; yields its URL once it accepts connections."""
    port = free_port()
    with module_server("tests.e2e.echo_mcp_server", port) as url:
        yield url


@contextmanager
def upstream(folder: Path, clients: dict[str, str]) -> Iterator[Upstream]:
    events = folder / "upstream.jsonl"
    events.touch()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.echo_upstream", str(events), json.dumps(clients)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], patience(30))
        line = process.stdout.readline() if ready else ""  # printed once its sockets are bound
        assert line.startswith("ready "), f"the upstream did not start: {line!r}"
        port_a, port_b = line.split()[1:]
        yield Upstream(f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}", events)
    finally:
        process.kill()
        process.wait(timeout=patience(10))
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def spec(scheme: dict[str, Any] | None) -> dict[str, Any]:
    """An OpenAPI document whose every operation takes the one security ``scheme`` (None: declares none)."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
    query = [{"name": "q", "in": "query", "schema": {"type": "string"}}]
    status = [{"name": "status", "in": "path", "required": True, "schema": {"type": "integer"}}]
    body = {"content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}}
    security = {"components": {"securitySchemes": {"s": scheme}}, "security": [{"s": []}]} if scheme else {}
    return {
        "openapi": "3.0.3",
        "info": {"title": "echo", "version": "1"},
        **security,
        "paths": {
            "/echo": {
                "get": {"operationId": "echo", "parameters": query, "responses": ok},
                "post": {"operationId": "send", "requestBody": body, "responses": ok},
            },
            "/fail/{status}": {"get": {"operationId": "fail", "parameters": status, "responses": ok}},
            "/redirect": {"get": {"operationId": "redirect", "responses": ok}},
            "/page": {"get": {"operationId": "page", "responses": ok}},
            "/once": {"get": {"operationId": "once", "responses": ok}},
        },
    }


BEARER = {"type": "http", "scheme": "bearer"}
SIGNED = {"scheme": "jwt_bearer", "provider": "up-jwt", "scopes": ["read"]}
OAUTH = {
    "scheme": "oauth2",
    "provider": "up",
    "client_id": "tb-oauth",
    "client_secret": "env:CANARY_OAUTH_SECRET",
}
Connector = tuple[dict[str, Any] | None, dict[str, Any]]
SCHEMES: dict[str, Connector] = {  # connector: (security scheme, connections)
    "keyh": (
        {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        {"scheme": "api_key", "name": "X-Api-Key", "location": "header"},
    ),
    "keyq": (
        {"type": "apiKey", "in": "query", "name": "api_key"},
        {"scheme": "api_key", "name": "api_key", "location": "query"},
    ),
    "keyc": (
        {"type": "apiKey", "in": "cookie", "name": "session"},
        {"scheme": "api_key", "name": "session", "location": "cookie"},
    ),
    "bear": ({"type": "http", "scheme": "bearer"}, {"scheme": "bearer", "secret": "env:CANARY_BEARER"}),
    "basic": ({"type": "http", "scheme": "basic"}, {"scheme": "basic"}),
    "hdr": (
        {"type": "apiKey", "in": "header", "name": "X-Token"},
        {"scheme": "header", "templates": {"X-Token": "tok {token}"}},
    ),
    "oauth": (BEARER, {**OAUTH, "scopes": ["read"]}),
    "cc": (
        {"type": "http", "scheme": "bearer"},
        {
            "scheme": "client_credentials",
            "provider": "up-post",
            "client_id": "tb-cc",
            "client_secret": "env:CANARY_CC_SECRET",
        },
    ),
    "aws": (None, {"scheme": "sigv4", "region": "us-east-1", "service": "execute-api"}),
    "jwt": (BEARER, SIGNED),  # its connection's secret: a service-account key file
    # per-user connections (owned by the agent that calls): an API key, OAuth, a JWT assertion per caller
    "puk": (
        {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        {"scheme": "api_key", "name": "X-Api-Key", "location": "header", "policy": "per_user"},
    ),
    "puo": (BEARER, {**OAUTH, "policy": "per_user"}),
    "jwtu": (
        BEARER,
        {
            **SIGNED,
            "service_account_file": "jwtu-key.json",
            "subject": "{name}@corp.example",
            "policy": "per_user",
        },
    ),
}
PER_USER = ("puk", "puo", "jwtu")
"""The connectors whose connections belong to the agent calling: the assistant's and bob's own."""
MCP = ("remote", "local")
"""The MCP upstreams: over streamable HTTP, and over stdio (its secrets in its environment)."""


def write_config(folder: Path, up: Upstream, database: str, base: str, mcp: str) -> Path:
    host_a, host_b = up.a.removeprefix("http://"), up.b.removeprefix("http://")
    connectors: dict[str, Any] = {}
    for name, (scheme, connections) in SCHEMES.items():
        (folder / f"{name}.json").write_text(json.dumps(spec(scheme)))
        connectors[name] = {
            "kind": "openapi",
            "spec": f"{name}.json",
            "base_url": up.a,
            "allow_hosts": [host_a, host_b],
            "connections": connections,
            # one retry of a 5xx, at once: the retried request is echoed too, and nothing waits
            "resilience": {"retry": {"max_attempts": 2, "base_delay": 0, "max_delay": 0}},
            "pagination": {"max_pages": 2},
        }
    connectors["remote"] = {  # an MCP upstream: a connection's bearer token and a static header
        "kind": "mcp",
        "url": mcp,
        "approve": "all-on-first-connect",
        "headers": {"X-Static-Key": "env:CANARY_MCP_HEADER"},
        "connections": {"scheme": "bearer", "secret": "env:CANARY_MCP_BEARER"},
    }
    connectors["local"] = {  # an MCP upstream over stdio: secrets in its environment
        "kind": "mcp",
        "command": sys.executable,
        "args": ["-m", "tests.e2e.echo_stdio_server"],
        "cwd": str(ROOT),
        "env": {
            "ECHO_STATIC": "env:CANARY_STDIO_ENV",
            "ECHO_TOKEN": "connection:secret",
            "PYTHONPATH": str(ROOT),
        },
        "protocol": "2025-11-25",
        "approve": "all-on-first-connect",
        "connections": {"scheme": "bearer"},
    }
    for name in ("oauth", "puo"):
        connectors[name]["connections"]["redirect_uri"] = f"{base}/v1/connections/callback"
    connectors["keyq"]["connections"]["probe_url"] = f"{up.a}/fail/403"
    provider = {"display_name": "Echo", "authorize_url": f"{up.a}/authorize", "token_url": f"{up.a}/token"}
    provider |= {"scope_separator": " ", "pkce": True, "refresh": {"supported": True, "rotates": True}}
    config = {
        "server": {"database": database},
        "providers": {
            "up": {**provider, "token_auth_method": "client_secret_basic"},
            "up-post": {**provider, "display_name": "Echo (post)", "token_auth_method": "client_secret_post"},
            "up-jwt": {**provider, "display_name": "Echo (JWT)", "token_auth_method": "none"},
        },
        "connectors": connectors,
        "hooks": {"pushes": {"verifier": "standard", "secret": "env:CANARY_HOOK"}},
        "subscriptions": {
            "mirror": {
                "source": "pushes",
                "webhook": {"url": f"{up.a}/hook", "secret": "env:CANARY_WHSEC", "allow_hosts": [host_a]},
            }
        },
        "agents": {"assistant": {"scopes": ["*"]}, "bob": {"scopes": [f"{c}.*" for c in PER_USER]}},
    }
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@dataclass
class Toolbridge:
    """Runs ``toolbridge`` commands (every one logging at DEBUG to ``log``) and keeps all they printed."""

    config: Path
    env: dict[str, str]
    log: Path
    seen: list[str] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tests.e2e.logged_toolbridge", str(self.log), *args]

    def run(self, *args: str, ok: bool = True) -> None:
        self.run_all((args, ok))

    def run_all(self, *commands: tuple[tuple[str, ...], bool]) -> list[str]:
        """Run the commands side by side (each ``(arguments, whether it must succeed)``); their stdout.
        What ``agents create`` prints there is the new key, shown once on purpose: not kept."""
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        started = [
            subprocess.Popen(
                self.command(*args, "-c", str(self.config)), cwd=self.config.parent, env=self.env, **pipes
            )
            for args, _ in commands
        ]
        outs = []
        for process, (args, ok) in zip(started, commands, strict=True):
            out, err = process.communicate(timeout=patience(120))
            self.seen += [err] if args[:2] == ("agents", "create") else [out, err]
            assert (process.returncode == 0) == ok, f"toolbridge {' '.join(args)}: {out}{err}"
            outs.append(out)
        return outs

    @contextmanager
    def serving(self, port: int) -> Iterator[str]:
        """``toolbridge serve``; yields the key printed for the agent ``assistant``."""
        out = self.log.with_name("serve.out")
        with open(out, "w") as sink:
            process = subprocess.Popen(
                self.command("serve", "-c", str(self.config), "--port", str(port), *AGENT),
                cwd=self.config.parent,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            yield self._wait(process, out, f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=patience(15))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=patience(15))
            # the banner shows the new key once, on purpose: it is checked everywhere else
            printed = out.read_text()
            self.seen.append(re.sub(r".*(shown once|try: curl).*\n", "", printed))

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], out: Path, base: str) -> str:
        deadline = time.monotonic() + patience(60)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"toolbridge serve stopped: {out.read_text()}"
            found = re.search(r"\(shown once\): (tb_\S+)", out.read_text())
            if found:
                try:
                    if httpx2.get(f"{base}/healthz", timeout=patience(2)).status_code == 200:
                        return found.group(1)
                except httpx2.TransportError:
                    pass
            time.sleep(0.1)  # bounded polling for readiness
        raise AssertionError(f"toolbridge serve did not start: {out.read_text()}")


class Agent:
    """An agent's REST and MCP calls, every answer kept."""

    def __init__(self, base: str, key: str, seen: list[str]) -> None:
        self.http = httpx2.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=patience(30), trust_env=False
        )
        self.seen = seen
        self.session = ""

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        answer = self.http.request(method, path, **kwargs)
        self.seen += [answer.text, json.dumps(dict(answer.headers))]
        return answer

    def call(self, tool: str, **arguments: Any) -> httpx2.Response:
        return self.rest("POST", f"/v1/tools/{tool}/call", json={"arguments": arguments})

    def mcp(self, era: str, tool: str, **arguments: Any) -> dict[str, Any]:
        params = {"name": tool, "arguments": arguments}
        if era == MODERN:
            headers = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
            params["_meta"] = ENVELOPE
        else:
            headers = {"mcp-protocol-version": LEGACY, "mcp-session-id": self._session()}
        return self._post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}, headers)

    def _session(self) -> str:
        if not self.session:
            info = {"name": "canaries", "version": "1"}
            params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": info}
            answer = self.http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
                headers={"accept": "application/json, text/event-stream"},
            )
            self.session = answer.headers["mcp-session-id"]
            headers = {"mcp-protocol-version": LEGACY, "mcp-session-id": self.session}
            self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        return self.session

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        headers = {"accept": "application/json, text/event-stream", **headers}
        answer = self.http.post("/mcp", json=body, headers=headers)
        self.seen += [answer.text, json.dumps(dict(answer.headers))]
        assert answer.status_code in (200, 202), answer.text
        if answer.status_code == 202:
            return {}
        text = answer.text
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
        return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture
async def written_log(database_url: str) -> AsyncIterator[Callable[[], Awaitable[bytes]]]:
    """PostgreSQL's write-ahead log written during the test (nothing for SQLite: its WAL is a file beside
    the database, read with it)."""
    if not database_url.startswith("postgresql"):

        async def nothing() -> bytes:
            return b""

        yield nothing
        return
    async with postgres_wal(database_url) as read:
        yield read


async def test_no_canary_reaches_anything_toolbridge_writes(
    tmp_path: Path, database_url: str, written_log: Callable[[], Awaitable[bytes]]
) -> None:
    planted = Canaries()
    clients = {"tb-oauth": planted.plant("oauthsecret"), "tb-cc": planted.plant("ccsecret")}
    with upstream(tmp_path, clients) as up, mcp_upstream() as mcp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = write_config(tmp_path, up, database_url, base, mcp)
        planted.service_account("jwtkey", tmp_path / "jwt-key.json", f"{up.a}/token")
        planted.service_account("jwtukey", tmp_path / "jwtu-key.json", f"{up.a}/token")
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "PYTHONPATH": str(ROOT),
            "TOOLBRIDGE_MASTER_KEY": planted.key("masterkey", 32),
            "CANARY_BEARER": planted.plant("bearer"),
            "CANARY_KEYH": planted.plant("keyh"),
            "CANARY_OAUTH_SECRET": clients["tb-oauth"],
            "CANARY_CC_SECRET": clients["tb-cc"],
            "CANARY_HOOK": planted.key("hooksecret", 32, "whsec_"),
            "CANARY_WHSEC": planted.key("whsec", 32, "whsec_"),
            "CANARY_MCP_HEADER": planted.plant("mcpheader"),
            "CANARY_MCP_BEARER": planted.plant("mcpbearer"),
            "CANARY_STDIO_ENV": planted.plant("stdioenv"),
            "CANARY_STDIO_CONN": planted.plant("stdioconn"),
        }
        tb = Toolbridge(config, env, tmp_path / "toolbridge.log")
        tb.run("connections", "add", "keyh", "--secret", "env:CANARY_KEYH")
        _, printed = tb.run_all(
            (("connections", "add", "local", "--secret", "env:CANARY_STDIO_CONN"), True),  # read at its start
            (("agents", "create", "bob"), True),
        )
        planted.plant("bobkey", printed.strip())
        with tb.serving(port) as key, Agent(base, key, tb.seen) as agent:
            planted.plant("agentkey", key)
            scenario(agent, tb, up, planted)
            with Agent(base, planted.values["bobkey"], tb.seen) as bob:
                per_user(bob, up, planted)
            revoked(agent, up)
            stored = await stored_text(database_url, tmp_path)  # SQLite: the WAL as the server left it
            assert "postgres" in database_url or (tmp_path / "toolbridge.db-wal").exists()
        tb.run_all(
            (("connections", "list"), True),
            (("audit", "tail", "--json", "-n", "500"), True),
            (("events", "tail", "--json", "-n", "100"), True),
        )
        stored += await stored_text(database_url, tmp_path)
        log = await written_log()
        assert database_url.startswith("sqlite") or len(log) > 100_000, "the scenario's writes are in the log"
        stored += log
        issued = up.issued()
        sent = json.dumps(up.requests("a"))
        foreign = json.dumps(up.requests("b"))
    assert len(issued) >= 5, "connect, a refresh and client credentials issued tokens"
    subjects = {
        json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "=="))["sub"] for t in issued if "." in t
    }
    assert subjects >= {"jwtkey@corp.example", "assistant@corp.example", "bob@corp.example"}, subjects
    assert up.requests("b"), "the redirect reached the foreign origin"
    assert "[redacted]" in "\n".join(tb.seen), "the echoing upstream was redacted, not silent"
    corpus = "\n".join([*tb.seen, (tmp_path / "toolbridge.log").read_text()])
    values = [*planted.values.values(), *issued]
    assert_absent(values, corpus, stored, forms=encoded, what="a canary")
    assert_absent(values, foreign, forms=encoded, what="a credential sent to the foreign origin:")
    keys = [planted.values["agentkey"], planted.values["bobkey"]]
    assert_absent(keys, sent, forms=encoded, what="an agent's own key sent upstream:")
    for raw in planted.raw:
        for form in (raw.hex(), raw.hex().upper()):
            assert form not in corpus and form.encode() not in stored
        assert raw not in stored


def scenario(agent: Agent, tb: Toolbridge, up: Upstream, planted: Canaries) -> None:
    deadline = time.monotonic() + patience(30)
    while not all(f"{s}.headers" in agent.http.get("/v1/tools").text for s in MCP):  # their tools, listed
        assert time.monotonic() < deadline, "the MCP upstreams' tools were not listed"
        time.sleep(0.1)  # bounded polling: toolbridge lists them in the background
    aws = {"access_key_id": f"AKIA{secrets.token_hex(8).upper()}", "session_token": planted.plant("awstoken")}
    for connector, secret in (
        ("aws", json.dumps({**aws, "secret_access_key": planted.plant("awssecret")})),
        ("jwt", (tb.config.parent / "jwt-key.json").read_text()),  # a service-account key file
        ("puk", planted.plant("pukassistant")),  # the assistant's own
        ("keyq", planted.plant("keyq")),
        ("keyc", planted.plant("keyc")),
        ("basic", f"{BASIC_USER}:{planted.plant('basicpassword')}"),  # (a user name is no secret)
        ("hdr", json.dumps({"token": planted.plant("hdr")})),
    ):
        added = agent.rest("POST", "/v1/connections", json={"connector": connector, "secret": secret})
        assert added.status_code == 201, added.text
    planted.plant("basicpair", f"{BASIC_USER}:{planted.values['basicpassword']}")
    connect_oauth(agent, "oauth")
    connect_oauth(agent, "puo")
    added = agent.rest("POST", "/v1/connections", json={"connector": "cc"})
    assert added.status_code == 201, added.text
    for connector in SCHEMES:
        echoed = agent.call(f"{connector}.echo", q="hello")
        assert echoed.status_code == 200, echoed.text
        assert agent.call(f"{connector}.send", body={"x": 1}).status_code == 200
        for status in FAILURES:
            assert agent.call(f"{connector}.fail", status=status).status_code >= 400
        assert agent.call(f"{connector}.redirect").status_code == 200
        paged = agent.call(f"{connector}.page")
        assert paged.status_code == 200 and paged.json()["result"]["toolbridge_pages"] == 2, paged.text
        for era in (LEGACY, MODERN):
            agent.mcp(era, f"{connector}.echo", q="hello")
            agent.mcp(era, f"{connector}.fail", status=401)
    assert agent.call("oauth.once").status_code == 200, "a 401 refreshed the token and the call went through"
    for server in MCP:
        assert "[redacted]" in agent.call(f"{server}.headers").text, "the MCP upstream got the credentials"
        assert agent.call(f"{server}.fail").status_code >= 400
        for era in (LEGACY, MODERN):
            agent.mcp(era, f"{server}.headers")
            agent.mcp(era, f"{server}.fail")
    assert agent.call("local.crash").status_code >= 400, "the stdio server exited: its stderr is quoted"
    listed = agent.rest("GET", "/v1/connections").json()["connections"]
    for connection in listed:
        agent.rest("POST", f"/v1/connections/{connection['id']}/test")
    [probed] = [c["id"] for c in listed if c["connector"] == "keyq"]  # its probe answers 403, echoing
    tb.run_all(
        (("connections", "test", probed), False),
        (("call", "basic.fail", "-a", "status=403"), False),
        (("hooks", "test", "pushes", "--type", "push", "--url", str(agent.http.base_url)), True),
    )
    webhooks(agent, up)
    agent.rest("GET", "/v1/calls?limit=500")


def revoked(agent: Agent, up: Upstream) -> None:
    """The upstream revokes every grant: refused refreshes and assertions, whose errors quote them."""
    httpx2.post(f"{up.a}/revoke", timeout=patience(10))
    assert agent.call("oauth.once").status_code >= 400, "the refused refresh is an error"
    for connector in ("jwt", "jwtu"):  # a new assertion, refused: the token endpoint's error quotes it
        assert agent.call(f"{connector}.fail", status=401).status_code >= 400
    agent.mcp(MODERN, "oauth.echo")


def per_user(bob: Agent, up: Upstream, planted: Canaries) -> None:
    """Bob's own connections beside the assistant's: an API key he adds, OAuth he connects, a JWT assertion
    minted for him; each of his calls goes out with his own credential."""
    added = bob.rest("POST", "/v1/connections", json={"connector": "puk", "secret": planted.plant("pukbob")})
    assert added.status_code == 201, added.text
    connect_oauth(bob, "puo")
    for connector in PER_USER:
        echoed = bob.call(f"{connector}.echo", q="bob")
        assert echoed.status_code == 200, echoed.text
        for status in (401, 500):  # a 401 refreshes bob's own OAuth token, mints him a new assertion
            assert bob.call(f"{connector}.fail", status=status).status_code >= 400
        for era in (LEGACY, MODERN):
            bob.mcp(era, f"{connector}.echo", q="bob")
            bob.mcp(era, f"{connector}.fail", status=401)
    for connection in bob.rest("GET", "/v1/connections").json()["connections"]:
        bob.rest("POST", f"/v1/connections/{connection['id']}/test")
    assert planted.values["pukbob"] in json.dumps(up.requests("a")), "bob's own key went out"


def connect_oauth(agent: Agent, connector: str) -> None:
    started = agent.rest("POST", "/v1/connections/connect", json={"connector": connector})
    assert started.status_code == 200, started.text
    approved = httpx2.get(started.json()["authorization_url"], timeout=patience(10))
    assert approved.status_code == 302, approved.text
    callback = agent.rest("GET", approved.headers["location"].removeprefix(str(agent.http.base_url)))
    assert callback.status_code == 200, callback.text


def webhooks(agent: Agent, up: Upstream) -> None:
    """An unsigned delivery is refused; the signed one (``hooks test``) goes out signed to the upstream."""
    unsigned = agent.rest("POST", "/hooks/pushes", json={"type": "push"})
    assert unsigned.status_code in (400, 401), unsigned.text
    deadline = time.monotonic() + patience(30)
    while not any(r["path"] == "/hook" for r in up.requests("a")):
        assert time.monotonic() < deadline, "the outbound webhook was not delivered"
        time.sleep(0.1)  # bounded polling: the worker delivers in the background


async def stored_text(database_url: str, folder: Path) -> bytes:
    """The database as toolbridge left it: the SQLite files (main, WAL, SHM) as bytes, or a plain dump of
    every PostgreSQL table."""
    if database_url.startswith("sqlite"):
        return await database_files(folder, "toolbridge.db*")
    return await postgres_dump(database_url)
