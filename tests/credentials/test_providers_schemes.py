"""Provider definitions and their schema, metadata checks (O5), JWT bearer, SigV4, settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from toolbridge.credentials import (
    ConnectFlow,
    CredentialManager,
    JwtAssertion,
    Keyring,
    MasterKey,
    ProviderDef,
    Secret,
    ServiceAccount,
    SigV4Auth,
    StaticKeys,
    Vault,
    builtin_providers,
    load_providers,
)
from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._providers import discover
from toolbridge.errors import ConfigFileError, ConfigurationError
from toolbridge.settings import parse_settings
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio
REQUIRED = {
    "github",
    "google",
    "microsoft",
    "slack",
    "dropbox",
    "box",
    "notion",
    "atlassian",
    "salesforce",
    "hubspot",
}


def test_builtin_definitions_cover_the_common_providers() -> None:
    providers = builtin_providers()
    assert set(providers) >= REQUIRED
    for p in providers.values():
        resolved = p.with_params({})
        assert (
            resolved.authorize_url
            and resolved.authorize_url.startswith("https://")
            and "{" not in resolved.authorize_url
        )
        assert resolved.token_url and resolved.token_url.startswith("https://")
    assert providers["slack"].scope_separator == "," and providers["slack"].error_in_body
    assert providers["google"].authorize_params["access_type"] == "offline"
    assert providers["microsoft"].with_params({"tenant": "contoso"}).token_url == (
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    )


def test_user_definitions_are_validated_by_the_schema() -> None:
    ours = load_providers(
        {"acme": {"display_name": "Acme", "issuer": "https://id.acme.test", "scope_separator": " "}}
    )
    assert ours["acme"].issuer == "https://id.acme.test" and "github" in ours
    with pytest.raises(ConfigurationError, match=r"provider 'bad': scope_separator: ';' is not one of"):
        load_providers({"bad": {"display_name": "B", "issuer": "https://x.test", "scope_separator": ";"}})
    with pytest.raises(ConfigurationError, match="provider 'bad'"):
        load_providers({"bad": {"display_name": "B", "scope_separator": " "}})  # no endpoints, no issuer
    with pytest.raises(ConfigurationError, match="Additional properties"):
        load_providers(
            {
                "bad": {
                    "display_name": "B",
                    "issuer": "https://x.test",
                    "scope_separator": " ",
                    "tokn_url": "x",
                }
            }
        )


def metadata_handler(doc: dict[str, object]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx2.Response(200, json=doc)
        return httpx2.Response(404)

    return httpx2.MockTransport(handle)


BASE_METADATA = {
    "issuer": "https://as.test",
    "authorization_endpoint": "https://as.test/authorize",
    "token_endpoint": "https://as.test/token",
}


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({}, True),
        ({"code_challenge_methods_supported": ["plain"]}, True),
        ({"code_challenge_methods_supported": ["S256"]}, False),
    ],
)
async def test_o5_flow_refused_without_s256(sqlite_url: str, extra: dict[str, object], refused: bool) -> None:
    client = httpx2.AsyncClient(transport=metadata_handler(BASE_METADATA | extra))
    provider = ProviderDef(name="as", display_name="AS", scope_separator=" ", issuer="https://as.test")
    binding = AuthConfig(
        scheme="oauth2",
        provider=provider,
        client_id="c",
        redirect_uri="http://127.0.0.1:1/cb",
        resource="https://api.test/",
    )
    async with Database(sqlite_url) as db, client:
        manager = CredentialManager(
            Vault(db, StaticKeys(Keyring(MasterKey.generate()))), {"x": binding}, client=client
        )
        flow = ConnectFlow(manager)
        if refused:
            with pytest.raises(ConfigurationError, match="does not advertise PKCE S256"):
                await flow.start("x")
        else:
            started = await flow.start("x")
            assert (
                "code_challenge_method=S256" in started.url
                and "resource=https%3A%2F%2Fapi.test%2F" in started.url
            )


async def test_discovery_requires_the_exact_issuer() -> None:
    async with httpx2.AsyncClient(
        transport=metadata_handler(BASE_METADATA | {"issuer": "https://evil.test"})
    ) as c:
        with pytest.raises(ConfigurationError, match="names issuer 'https://evil.test'"):
            await discover(c, "https://as.test")


def rsa_pem() -> tuple[str, RSAKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode(), RSAKey.import_key(pem)


def test_jwt_bearer_assertion_from_a_service_account_file(tmp_path: Path) -> None:
    pem, public = rsa_pem()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "bot@proj.iam.test",
                "private_key": pem,
                "private_key_id": "kid-1",
                "token_uri": "https://oauth2.test/token",
            }
        )
    )
    account = ServiceAccount.from_file(path)
    assert pem not in repr(account)
    assertion = JwtAssertion.for_service_account(account, scope="a b", subject="user@test")
    token = jwt.decode(assertion.sign().reveal(), public)
    assert token.header["kid"] == "kid-1" and token.header["alg"] == "RS256"
    claims = token.claims
    assert claims["iss"] == "bot@proj.iam.test" and claims["aud"] == "https://oauth2.test/token"
    assert claims["sub"] == "user@test" and claims["scope"] == "a b" and claims["exp"] - claims["iat"] == 300
    with pytest.raises(ConfigurationError, match="not a service-account key file"):
        ServiceAccount.from_json(Secret("{}"))


def test_sigv4_signs_with_botocore() -> None:
    auth = SigV4Auth(
        access_key_id="AKIDEXAMPLE",
        secret_access_key=Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region="us-east-1",
        service="execute-api",
        session_token=Secret("session"),
    )
    signed = []
    for body in (b"{}", b"{ }"):
        request = httpx2.Request("POST", "https://api.test/items", content=body)
        signed.append(next(auth.auth_flow(request)))
    header = signed[0].headers["authorization"]
    assert (
        header.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "/us-east-1/execute-api/aws4_request" in header
    )
    assert "SignedHeaders=" in header and "Signature=" in header and "wJalr" not in header
    assert signed[0].headers["x-amz-security-token"] == "session" and "x-amz-date" in signed[0].headers
    assert header != signed[1].headers["authorization"], "the body is signed"


def test_sigv4_keeps_the_session_token_out_of_botocores_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    """botocore logs the canonical request it signs at DEBUG: every signed header, the session token too."""
    token, key = "FwoGZXIvYXdzEJr" + "t" * 24, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    auth = SigV4Auth(
        access_key_id="AKIDEXAMPLE",
        secret_access_key=Secret(key),
        region="us-east-1",
        service="execute-api",
        session_token=Secret(token),
    )
    with caplog.at_level(logging.DEBUG, logger="botocore.auth"):
        signed = next(auth.auth_flow(httpx2.Request("GET", "https://api.test/items?q=1")))
    assert signed.headers["x-amz-security-token"] == token
    assert "Signature:" in caplog.text, "botocore logged its signing (at DEBUG)"
    assert token not in caplog.text and key not in caplog.text


def test_settings_refuse_a_literal_client_secret() -> None:
    text = """
connectors:
  gh:
    kind: python
    tools: []
    connections: {scheme: oauth2, provider: github, client_id: x, client_secret: ghs_literal}
"""
    with pytest.raises(ConfigFileError, match="write a reference") as info:
        parse_settings(text)
    assert "ghs_literal" not in str(info.value.message.split("(got")[0])


def test_settings_build_a_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolbridge import Hub

    monkeypatch.setenv("GH_SECRET", "s")
    text = """
connectors:
  gh:
    kind: python
    tools: []
    connections: {scheme: oauth2, provider: microsoft, provider_params: {tenant: t1}, client_id: x,
                  client_secret: "env:GH_SECRET", scopes: [User.Read]}
"""
    hub = Hub.from_settings(parse_settings(text, source=tmp_path / "toolbridge.yaml"))
    assert hub.credentials is not None
    binding = hub.credentials.bindings["gh"]
    assert binding.client_secret == Secret("s") and binding.scope_string() == "offline_access User.Read"
    assert binding.provider is not None and "/t1/" in (binding.provider.token_url or "")
    with pytest.raises(ConfigurationError, match="did you mean 'github'"):
        Hub.from_settings(
            parse_settings(text.replace("microsoft", "githb").replace("provider_params: {tenant: t1}, ", ""))
        )
