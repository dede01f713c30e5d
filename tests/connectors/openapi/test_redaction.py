"""An upstream that echoes the secret it was sent, in any common encoding, never gets it to the agent.

The encodings here are written independently of the redaction code: percent-encoding in upper and lower
case, form encoding, base64 and base64url (alone and inside a longer base64 text), HTML escapes and JSON
escapes. The canary holds characters every one of those encodings changes.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2
import pytest

from tests._leaks import assert_absent, encoded
from tests.connectors.openapi.conftest import configured, ingested, openapi
from toolbridge import Hub, Principal, UpstreamStatusError
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.credentials import Secret

pytestmark = pytest.mark.anyio

DOC = openapi(
    {"/echo": {"get": {"operationId": "echo", "responses": {"200": {"description": "ok"}}}}},
    components={"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    security=[{"token": []}],
)


def echoes(token: str) -> dict[str, str]:
    blob = json.dumps({"user": "u", "token": token, "scope": "all"}).encode()
    return {
        "percent": quote(token, safe=""),
        "percent_lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(token, safe="")),
        "form": quote_plus(token),
        "base64": base64.b64encode(token.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(token.encode()).decode().rstrip("="),
        "base64_blob": base64.b64encode(blob).decode(),
        "base64_blob_shifted": base64.b64encode(b"x" + blob).decode(),
        "html": html.escape(token),
        "json": json.dumps({"token": token}),
        "json_slash": json.dumps({"token": token}).replace("/", "\\/"),
    }


def echo(request: httpx2.Request) -> httpx2.Response:
    """Answers with what it was sent, encoded; with ``fail`` in the path, as a 400 error's text."""
    token = request.headers["authorization"].removeprefix("Bearer ")
    if request.url.path.startswith("/fail/"):
        return httpx2.Response(400, text=" | ".join(echoes(token).values()))
    return httpx2.Response(200, json={"you_sent": echoes(token)})


@pytest.fixture
def token() -> str:
    return f"cAn/ry+t0k=n&<'q'>\"{secrets.token_hex(6)}"


async def call_echo(token: str, base_url: str = "https://api.test") -> Any:
    connector = OpenAPIConnector(
        "api",
        ingested(DOC),
        base_url=base_url,
        transport=httpx2.MockTransport(echo),
    )
    hub = Hub(credentials=configured("api", scheme="bearer", secret=Secret(token)))
    hub.add_connector(connector)
    async with hub:
        return await hub.call(Principal.local(), "api.echo", {})


async def test_every_encoding_of_an_echoed_secret_is_redacted(token: str) -> None:
    result = await call_echo(token)
    text = json.dumps(result.value) + result.text
    assert_absent([token], text, forms=encoded, what="an echoed secret")
    sent, original = result.value["you_sent"], echoes(token)
    for blob in ("base64_blob", "base64_blob_shifted"):  # the token inside a longer base64 text
        assert "[redacted]" in sent[blob] and sent[blob] != original[blob]


async def test_an_echo_in_an_error_body_is_redacted(token: str) -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await call_echo(token, "https://api.test/fail")
    error = info.value
    assert error.body and "[redacted]" in error.body
    assert_absent([token], f"{error.message} {error.hint} {error.body}", forms=encoded, what="a secret")
