"""RELIABILITY.md G: URL import refuses every SSRF vector before a connection is attempted.

The resolver is a fake that records each lookup; the transport is an ``httpx2.MockTransport`` that
records each request — a blocked target must leave the transport untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx2
import pytest

from toolbridge.errors import BadRequest, PayloadTooLarge
from toolbridge.workspace import HttpImportSource, Importer, ImportPolicy, Workspaces, is_blocked_address

from .conftest import ALICE

pytestmark = pytest.mark.anyio
PUBLIC = "93.184.215.14"


class FakeResolver:
    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers) or [[PUBLIC]]
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


class Recorder:
    def __init__(self, respond: httpx2.Response | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.respond = respond

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.respond or httpx2.Response(
            200, content=_stream(b"hello"), headers={"content-type": "text/plain"}
        )


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    """A body that arrives like a network one (read as it streams, never pre-loaded)."""
    yield data


def source(resolver: FakeResolver, recorder: Recorder, **policy: object) -> HttpImportSource:
    return HttpImportSource(
        policy=ImportPolicy(**policy),  # type: ignore[arg-type]
        resolver=resolver,
        transport=httpx2.MockTransport(recorder),
    )


S1 = [
    "http://127.0.0.1/", "http://0.0.0.0/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
    "http://100.64.0.1/", "http://10.0.0.1/", "http://[fc00::1]/", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://[ff02::1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://2130706433/",
    "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/",
]  # fmt: skip
S5 = [
    "file:///etc/passwd", "gopher://example.com/", "dict://example.com:11211/", "ftp://example.com/",
    "https://user:pass@example.com/", "http://127.0.0.1:80\\@evil.com/", "http://evil.com@127.0.0.1/",
    "http://localhost./", "http://LOCALHOST/",
]  # fmt: skip
S7 = ["http://example.com:22/", "http://example.com:6379/", "http://example.com:8474/"]


async def _refused(url: str, resolver: FakeResolver, recorder: Recorder, tmp_path: Path) -> str:
    with pytest.raises(BadRequest) as info:
        await source(resolver, recorder).fetch(url, tmp_path / "out")
    assert recorder.requests == [], f"{url} reached the transport"
    return info.value.message


@pytest.mark.parametrize("url", S1)
async def test_s1_internal_and_numeric_targets(url: str, tmp_path: Path) -> None:
    resolver, recorder = FakeResolver(["127.0.0.1"]), Recorder()
    message = await _refused(url, resolver, recorder, tmp_path)
    assert resolver.lookups == []  # numeric hosts are addresses, never looked up as names
    assert message == await _refused("http://10.0.0.1/", FakeResolver(), Recorder(), tmp_path)


async def test_s2_one_private_record_is_enough(tmp_path: Path) -> None:
    await _refused("http://mixed.example/", FakeResolver([PUBLIC, "10.0.0.5"]), Recorder(), tmp_path)


async def test_s3_rebinding_connects_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.9:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.9:3128")
    resolver, recorder = FakeResolver([PUBLIC], ["127.0.0.1"]), Recorder()
    fetched = await source(resolver, recorder).fetch("https://rebind.example/file.txt", tmp_path / "out")
    assert resolver.lookups == ["rebind.example"]  # one lookup; no second answer reaches the socket
    [request] = recorder.requests
    assert request.url.host == PUBLIC and request.headers["host"] == "rebind.example"
    assert request.extensions["sni_hostname"] == "rebind.example"
    assert fetched.blob.size == 5 and (tmp_path / "out").read_bytes() == b"hello"


async def test_s4_redirect_to_metadata_is_checked_and_blocked(tmp_path: Path) -> None:
    recorder = Recorder(
        httpx2.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"})
    )
    with pytest.raises(BadRequest):
        await source(FakeResolver(), recorder).fetch("http://public.example/", tmp_path / "out")
    assert len(recorder.requests) == 1


async def test_s4_no_more_than_five_hops(tmp_path: Path) -> None:
    recorder = Recorder(httpx2.Response(302, headers={"location": "http://public.example/again"}))
    with pytest.raises(BadRequest, match="redirected more than 5"):
        await source(FakeResolver(), recorder).fetch("http://public.example/", tmp_path / "out")
    assert len(recorder.requests) == 6


@pytest.mark.parametrize("url", S5)
async def test_s5_schemes_userinfo_and_parser_tricks(url: str, tmp_path: Path) -> None:
    resolver = FakeResolver(["127.0.0.1"])
    await _refused(url, resolver, Recorder(), tmp_path)


async def test_s6_byte_cap(tmp_path: Path) -> None:
    big = Recorder(httpx2.Response(200, content=_stream(b"x" * 10_000), headers={"content-length": "10000"}))
    with pytest.raises(PayloadTooLarge):
        await source(FakeResolver(), big, max_bytes=1000).fetch("http://public.example/", tmp_path / "out")

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"y" * 4096

    stream = Recorder(httpx2.Response(200, content=endless()))  # no Content-Length: counted as it streams
    with pytest.raises(PayloadTooLarge):
        await source(FakeResolver(), stream, max_bytes=50_000).fetch(
            "http://public.example/", tmp_path / "o2"
        )


@pytest.mark.parametrize("url", S7)
async def test_s7_ports_outside_the_allowlist(url: str, tmp_path: Path) -> None:
    resolver = FakeResolver()
    message = await _refused(url, resolver, Recorder(), tmp_path)
    assert resolver.lookups == []
    assert message == await _refused("http://10.0.0.1/", FakeResolver(), Recorder(), tmp_path)


def test_global_unicast_passes_and_unwrapped_forms_do_not() -> None:
    assert not is_blocked_address(PUBLIC)
    assert not is_blocked_address("2606:4700::1111")
    assert is_blocked_address("::ffff:10.0.0.1") and is_blocked_address("64:ff9b::a00:1")
    assert not is_blocked_address("127.0.0.1", allow_loopback=True)
    assert is_blocked_address("10.0.0.1", allow_loopback=True)


@pytest.mark.parametrize(
    "address", ["fec0::1", "192.0.0.8", "192.88.99.1", "2002:c058:6301::", "3fff::1", "64:ff9b:1::1"]
)
def test_special_purpose_ranges_ipaddress_calls_global_are_blocked(address: str) -> None:
    assert is_blocked_address(address)


def test_allow_loopback_admits_this_hosts_loopback_not_one_wrapped_for_a_gateway() -> None:
    assert not is_blocked_address("::1", allow_loopback=True)
    assert not is_blocked_address("::ffff:127.0.0.1", allow_loopback=True)
    assert is_blocked_address("64:ff9b::7f00:1", allow_loopback=True)  # NAT64: the gateway's loopback
    assert is_blocked_address("2002:7f00:1::", allow_loopback=True)  # 6to4: a relay's loopback


@pytest.mark.parametrize("url", ["http://[64:ff9b::7f00:1]:18080/", "http://[2002:7f00:1::]/"])
async def test_allow_loopback_refuses_nat64_and_6to4_loopback(url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    with pytest.raises(BadRequest):
        await source(FakeResolver(), recorder, allow_loopback=True).fetch(url, tmp_path / "out")
    assert recorder.requests == []


@pytest.mark.parametrize("url", S7)
async def test_allow_loopback_keeps_the_port_rule_for_public_hosts(url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    with pytest.raises(BadRequest):
        await source(FakeResolver(), recorder, allow_loopback=True).fetch(url, tmp_path / "out")
    assert recorder.requests == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "http://[::1]:5432/", "http://localhost:22/"])
async def test_allowed_ports_bind_loopback_too(url: str, tmp_path: Path) -> None:
    resolver, recorder = FakeResolver(["127.0.0.1"]), Recorder()
    policy = {"allow_loopback": True, "allowed_ports": (18080,)}
    with pytest.raises(BadRequest):
        await source(resolver, recorder, **policy).fetch(url, tmp_path / "out")
    assert recorder.requests == []
    await source(resolver, recorder, **policy).fetch("http://127.0.0.1:18080/", tmp_path / "ok")
    assert len(recorder.requests) == 1


async def test_import_commits_a_file_and_checks_the_workspace_first(ws: Workspaces) -> None:
    recorder = Recorder()
    importer = Importer([source(FakeResolver(), recorder)])
    entry = await importer.import_into(ws, ALICE, "team", "https://public.example/a.txt", "/in/a.txt")
    assert (await ws.read(ALICE, "team", "/in/a.txt"))[1] == b"hello"
    assert entry.metadata["source_url"] == "https://public.example/a.txt"
    recorder.requests.clear()
    from toolbridge.errors import NotFound

    with pytest.raises(NotFound):
        await importer.import_into(ws, ALICE, "other", "https://public.example/a.txt", "/x")
    assert recorder.requests == []
