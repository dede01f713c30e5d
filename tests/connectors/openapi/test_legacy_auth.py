"""An OpenAPI connector's deprecated ``auth:`` block is read as the connection it amounts to.

A real upstream on 127.0.0.1 records what each request carried. For every kind of security scheme the
request with ``auth:`` carries the secret where the document says; the deprecation warning names the
file and line and gives a ``connections:`` block which, pasted in place of ``auth:``, sends exactly the
same request without a warning.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.openapi.conftest import openapi
from toolbridge import CredentialsError, Hub, Principal

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-canary-61d2"


class Upstream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[dict[str, str]] = []

    @property
    def last(self) -> dict[str, str]:
        return self.seen[-1]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    sock = loopback_socket()
    served = Upstream(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def record(request: Request) -> Response:
        served.seen.append({"query": request.url.query, **{k.lower(): v for k, v in request.headers.items()}})
        return JSONResponse({"ok": True})

    with uvicorn_thread(Starlette(routes=[Route("/me", record)]), sock):
        yield served


def _document(url: str, schemes: dict[str, Any], required: list[str]) -> dict[str, Any]:
    me = {"get": {"operationId": "me", "responses": {"200": {"description": "ok"}}}}
    return openapi(
        {"/me": me},
        servers=[{"url": url}],
        components={"securitySchemes": schemes},
        security=[{name: [] for name in required}],
    )


def _config(tmp_path: Path, upstream: Upstream, schemes: dict[str, Any], block: str) -> Path:
    (tmp_path / "api.json").write_text(json.dumps(_document(upstream.url, schemes, list(schemes))))
    path = tmp_path / "toolbridge.yaml"
    path.write_text(
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n"
        "connectors:\n"
        "  api:\n"
        "    kind: openapi\n"
        "    spec: api.json\n"
        "    idempotency_header: none\n" + textwrap.indent(block, "    ")
    )
    return path


async def _call(path: Path) -> None:
    hub = Hub.from_file(path)
    async with hub:
        await hub.call(Principal.local(), "api.me")


def _replacement(caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    """The warning's first line and the YAML it gives (dedented)."""
    (record,) = [r for r in caplog.records if "deprecated" in r.getMessage()]
    first, _, block = record.getMessage().partition("\n")
    return first, textwrap.dedent(block) + "\n"


CASES = [
    pytest.param(
        {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
        {"key": "k 1"},
        {"query": "api_key=k+1"},
        "scheme: api_key",
        id="api-key-in-query",
    ),
    pytest.param(
        {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        {"key": SECRET},
        {"x-api-key": SECRET},
        "scheme: api_key",
        id="api-key-in-header",
    ),
    pytest.param(
        {"sid": {"type": "apiKey", "in": "cookie", "name": "sid"}},
        {"sid": SECRET},
        {"cookie": f"sid={SECRET}"},
        "location: cookie",
        id="api-key-in-cookie",
    ),
    pytest.param(
        {"basic": {"type": "http", "scheme": "basic"}},
        {"basic": "alice:pw"},
        {"authorization": "Basic YWxpY2U6cHc="},
        "scheme: basic",
        id="basic",
    ),
    pytest.param(
        {"basic": {"type": "http", "scheme": "basic"}},
        {"basic": "YWxpY2U6cHc="},
        {"authorization": "Basic YWxpY2U6cHc="},
        "scheme: header",
        id="basic-already-encoded",
    ),
    pytest.param(
        {"token": {"type": "http", "scheme": "bearer"}},
        {"token": SECRET},
        {"authorization": f"Bearer {SECRET}"},
        "scheme: bearer",
        id="bearer",
    ),
    pytest.param(
        {"oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://id.example/.well-known"}},
        {"oidc": SECRET},
        {"authorization": f"Bearer {SECRET}"},
        "scheme: bearer",
        id="openid-connect",
    ),
    pytest.param(
        {"tok": {"type": "http", "scheme": "token"}},
        {"tok": SECRET},
        {"authorization": f"Token {SECRET}"},
        "Authorization: Token {secret}",
        id="other-http-scheme",
    ),
    pytest.param(
        {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
            "key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        {"bearer": "t0k", "cookie": "c1", "key": SECRET},
        {"authorization": "Bearer t0k", "cookie": "sid=c1", "x-api-key": SECRET},
        "bearer: env:TB_LEGACY_BEARER",
        id="several-schemes",
    ),
]


@pytest.mark.parametrize(("schemes", "values", "expected", "written"), CASES)
async def test_auth_becomes_a_connection_and_the_warning_gives_its_yaml(
    tmp_path: Path,
    upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    schemes: dict[str, Any],
    values: dict[str, str],
    expected: dict[str, str],
    written: str,
) -> None:
    refs = {name: f"env:TB_LEGACY_{name.upper()}" for name in values}
    for name, value in values.items():
        monkeypatch.setenv(f"TB_LEGACY_{name.upper()}", value)
    block = "auth:\n" + "".join(f"  {name}: {ref}\n" for name, ref in refs.items())
    path = _config(tmp_path, upstream, schemes, block)
    caplog.set_level(logging.WARNING)
    await _call(path)
    sent = upstream.last
    assert {k: sent.get(k) for k in expected} == expected

    first, replacement = _replacement(caplog)
    assert first.startswith(f"{path}:7: connectors.api.auth is deprecated")  # the line of 'auth:'

    assert replacement.startswith("connections:\n") and written in replacement
    assert not any(value in caplog.text for value in values.values()), "a secret reached the log"

    caplog.clear()
    path = _config(tmp_path, upstream, schemes, replacement)  # pasted in place of the 'auth:' block
    await _call(path)
    assert {k: upstream.last.get(k) for k in expected} == expected
    assert "deprecated" not in caplog.text


async def test_an_unset_variable_leaves_the_hub_running_and_the_call_says_which(
    tmp_path: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TB_LEGACY_UNSET", raising=False)
    schemes = {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    path = _config(tmp_path, upstream, schemes, "auth: {key: env:TB_LEGACY_UNSET}\n")
    with pytest.raises(CredentialsError, match="env:TB_LEGACY_UNSET is not set") as info:
        await _call(path)
    assert "TB_LEGACY_UNSET" in (info.value.hint or "")


async def test_schemes_that_cannot_share_a_connection_are_refused_where_written(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_LEGACY_Q", "q")
    monkeypatch.setenv("TB_LEGACY_H", "h")
    schemes = {
        "query": {"type": "apiKey", "in": "query", "name": "api_key"},
        "header": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    path = _config(tmp_path, upstream, schemes, "auth: {query: env:TB_LEGACY_Q, header: env:TB_LEGACY_H}\n")
    hub = Hub.from_file(path)
    error = hub.connector("api").report.error or ""  # type: ignore[attr-defined]
    assert f"{path}:7: connectors.api.auth: security scheme 'query'" in error
    assert "cannot share one connection" in error and "connections:" in error
    assert len(hub.catalog) == 0


async def test_auth_beside_connections_is_ignored_with_a_warning(
    tmp_path: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_LEGACY_OLD", "old-key")
    monkeypatch.setenv("TB_LEGACY_NEW", SECRET)
    schemes = {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    block = (
        "auth: {key: env:TB_LEGACY_OLD}\n"
        "connections: {scheme: api_key, name: X-API-Key, secret: env:TB_LEGACY_NEW}\n"
    )
    path = _config(tmp_path, upstream, schemes, block)
    caplog.set_level(logging.WARNING)
    await _call(path)
    assert upstream.last["x-api-key"] == SECRET
    assert f"{path}:7: connectors.api.auth is deprecated and ignored" in caplog.text
