"""The MCP channel's network settings against real servers on 127.0.0.1: an HTTP forward proxy, a
server behind a private CA, a server that requires a client certificate (mutual TLS).

The upstream is the official SDK's ``MCPServer`` under uvicorn (TLS by uvicorn itself); the proxy is a
small real one in this module (CONNECT tunnels, and absolute-form forwarding for ``http://``), which
counts what went through it. Certificates are made here with ``cryptography``: a CA, a server certificate
for 127.0.0.1 and a client certificate, both signed by the CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp.server.mcpserver import MCPServer

from tests._handshake import give_up_during_the_handshake
from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.mcp.conftest import hub_with
from toolbridge import Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.connectors.mcp._client import upstream_client
from toolbridge.errors import ConfigurationError, ToolbridgeError
from toolbridge.settings import parse_settings

pytestmark = pytest.mark.anyio

AGENT = Principal.agent("bot", ["*:write"])
LOOPBACK = ipaddress.ip_address("127.0.0.1")


# -- certificates ---------------------------------------------------------------------------------


@dataclass
class Pki:
    """PEM files of a private CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _signed(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0] if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    return builder


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _signed("toolbridge test CA", ca_key, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    issuer = (ca.subject, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _signed("127.0.0.1", server_key, issuer)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        _signed("toolbridge", client_key, issuer)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca=_write(folder / "ca.pem", ca),
        server_cert=_write(folder / "server.pem", server, server_key),
        server_key=folder / "server.key",
        client_cert=_write(folder / "client.pem", client, client_key),
        client_key=folder / "client.key",
    )


# -- the upstream ---------------------------------------------------------------------------------


def _app() -> Any:
    server = MCPServer("networked")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    return server.streamable_http_app(json_response=True)


@contextmanager
def upstream(*, tls: Pki | None = None, client_certs: bool = False) -> Iterator[str]:
    """The SDK server on 127.0.0.1 (``tls``: HTTPS with the PKI's server certificate; ``client_certs``:
    and a client certificate signed by its CA is required)."""
    config: dict[str, Any] = {"lifespan": "on", "http": "httptools"}
    if tls is not None:
        config |= {"ssl_certfile": str(tls.server_cert), "ssl_keyfile": str(tls.server_key)}
        if client_certs:
            config |= {"ssl_ca_certs": str(tls.ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    sock = loopback_socket()
    with uvicorn_thread(_app(), sock, **config):
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}/mcp"


# -- the proxy ------------------------------------------------------------------------------------


@dataclass
class Proxy:
    """An HTTP forward proxy: ``CONNECT host:port`` opens a tunnel; an absolute-form request is
    forwarded as it is (its connection then piped). ``seen`` holds each connection's first request line."""

    seen: list[str] = field(default_factory=list)

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                try:
                    head += await client.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
            line = head.split(b"\r\n", 1)[0].decode()
            self.seen.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                rest = head.partition(b"\r\n\r\n")[2]
                await client.send(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                authority = target.split("://", 1)[1].split("/", 1)[0]
                host, _, port = authority.rpartition(":")
                rest = head
            async with await anyio.connect_tcp(host, int(port)) as remote:
                if rest:
                    await remote.send(rest)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe, client, remote, tg.cancel_scope)
                    await _pipe(remote, client, tg.cancel_scope)


async def _pipe(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    scope.cancel()


@asynccontextmanager
async def proxy() -> AsyncIterator[tuple[str, Proxy]]:
    served = Proxy()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, served.handle)
        try:
            yield f"http://127.0.0.1:{port}", served
        finally:
            tg.cancel_scope.cancel()


async def add_through(server: HttpServer) -> str:
    connector = McpConnector("net", server, restart_delays=(60.0,))
    async with hub_with(connector) as hub:
        result = await hub.call(AGENT, "net.add", {"a": 2, "b": 3})
    return str(result.value["content"][0]["text"])


# -- tests ----------------------------------------------------------------------------------------


async def test_an_upstream_is_reached_through_an_http_proxy() -> None:
    with upstream() as url:
        async with proxy() as (proxy_url, served):
            assert await add_through(HttpServer(url=url, proxy=proxy_url)) == "5"
    authority = url.split("://", 1)[1].split("/", 1)[0]
    assert served.seen and all(f"http://{authority}/mcp" in line for line in served.seen)


async def test_an_https_upstream_behind_a_private_ca_through_a_proxy_tunnel(pki: Pki) -> None:
    with upstream(tls=pki) as url:
        async with proxy() as (proxy_url, served):
            server = HttpServer(url=url, proxy=proxy_url, ca_file=str(pki.ca))
            assert await add_through(server) == "5"
    authority = url.split("://", 1)[1].split("/", 1)[0]
    assert served.seen and all(line.startswith(f"CONNECT {authority} ") for line in served.seen)


@pytest.mark.parametrize("fast", [False, True], ids=["httpx2", "fast-path"])
async def test_a_private_ca_is_trusted_only_when_configured(pki: Pki, fast: bool) -> None:
    with upstream(tls=pki) as url:
        assert await add_through(HttpServer(url=url, ca_file=str(pki.ca), fast_path=fast)) == "5"
        connector = McpConnector("net", HttpServer(url=url, fast_path=fast), restart_delays=(60.0,))
        async with hub_with(connector) as hub:  # the system's CAs do not know it: no session, no tools
            assert not connector.connected
            assert "CERTIFICATE_VERIFY_FAILED" in connector.status
            with pytest.raises(ToolbridgeError):
                await hub.call(AGENT, "net.add", {"a": 2, "b": 3})


@pytest.mark.parametrize("fast", [False, True], ids=["httpx2", "fast-path"])
async def test_an_upstream_that_requires_a_client_certificate(pki: Pki, fast: bool) -> None:
    with upstream(tls=pki, client_certs=True) as url:
        mtls = HttpServer(
            url=url,
            ca_file=str(pki.ca),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
            fast_path=fast,
        )
        assert await add_through(mtls) == "5"
        connector = McpConnector("net", HttpServer(url=url, ca_file=str(pki.ca), fast_path=fast))
        async with hub_with(connector):  # without the certificate the server refuses the handshake
            assert not connector.connected


@pytest.mark.parametrize("fast", [False, True], ids=["httpx2", "fast-path"])
async def test_a_connection_cancelled_during_its_tls_handshake_is_closed(fast: bool) -> None:
    """A call given up while the server has not answered the client's hello (its deadline passed, the
    connector closes): the client closes the socket, which the server sees as the end of the stream."""

    async def send(url: str) -> None:
        server = HttpServer(url=f"{url}/mcp", fast_path=fast)
        async with upstream_client(server) as client:
            await client.post(server.url, content=b"{}")

    await give_up_during_the_handshake(send)


def test_network_settings_are_read_and_bad_combinations_refused(tmp_path: Path) -> None:
    text = (
        "connectors:\n  up:\n    kind: mcp\n    url: https://mcp.example/mcp\n"
        "    proxy: http://127.0.0.1:3128\n    ca_file: ca.pem\n    client_cert: me.pem\n"
    )
    config = parse_settings(text).connectors["up"]
    assert config.proxy == "http://127.0.0.1:3128" and config.client_cert == "me.pem"  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="fast_path"):
        parse_settings(text + "    fast_path: true\n")
    with pytest.raises(ConfigurationError, match="proxy"):
        parse_settings("connectors:\n  up:\n    kind: mcp\n    command: x\n    proxy: http://127.0.0.1:1\n")
    with pytest.raises(ConfigurationError, match="client_cert"):
        HttpServer(url="https://h/mcp", client_key="k.pem")
    assert "s3cret" not in repr(HttpServer(url="https://h/mcp", proxy="http://user:s3cret@127.0.0.1:1"))
    # which client: the fast path unless a proxy is given or fast_path says otherwise
    assert config.fast_path is None  # type: ignore[union-attr]
    assert HttpServer(url="https://h/mcp").fast and HttpServer(url="https://h/mcp", ca_file="ca.pem").fast
    assert not HttpServer(url="https://h/mcp", proxy="http://127.0.0.1:1").fast
    assert not HttpServer(url="https://h/mcp", fast_path=False).fast


async def test_a_missing_ca_file_stops_the_connector_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    connector = McpConnector("up", HttpServer(url="https://127.0.0.1:9/mcp", ca_file=str(missing)))
    with pytest.raises(ConfigurationError, match="cannot read the CA file") as info:
        async with connector:
            pass
    assert str(missing) in str(info.value)
