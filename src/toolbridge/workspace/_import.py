"""URL import, guarded against SSRF (RELIABILITY.md G), and the seam for cloud-drive imports.

For every hop (the first request and each of at most 5 redirects) the guard:

1. accepts only ``http``/``https`` URLs without user info, backslashes or control characters, on an
   allowed port (80 and 443 by default);
2. reads numeric host forms the way the C library does (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
   ``127.1``) so they cannot slip past as "names";
3. resolves the name with the injected resolver and refuses if **any** address is not global unicast —
   after unwrapping IPv4-mapped (``::ffff:``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``) forms;
4. connects to the address it checked (pinned: the URL carries the IP, ``Host`` and TLS SNI carry the
   name), so a second DNS answer cannot redirect the socket (rebinding);
5. ignores proxy settings from the environment (``trust_env=False``), caps bytes and total time, and
   asks for ``identity`` encoding so a compression bomb is stored, not expanded.

Every refusal raises the same :class:`BadRequest` with the same words, whichever rule fired, so the error
does not reveal which internal address or port exists.

**Cloud drives** (Google Drive, Dropbox, Box, OneDrive) plug in as further :class:`ImportSource`
implementations: ``handles(ref)`` recognises their references (``gdrive:<file id>``, share links) and
``fetch`` downloads with the caller's *connection* (credentials resolved by the hub's credentials layer)
into the given temporary file. :class:`Importer` picks the first source that handles a reference and
commits the file like an upload (lease and quota checked at commit).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import httpx2

from toolbridge.errors import BadRequest, PayloadTooLarge, UpstreamError, UpstreamTimeout
from toolbridge.policy import Principal
from toolbridge.workspace._blobs import BlobInfo, hash_file

if TYPE_CHECKING:
    from toolbridge.workspace._model import Entry
    from toolbridge.workspace._service import Workspaces

__all__ = [
    "Fetched",
    "HttpImportSource",
    "ImportPolicy",
    "ImportSource",
    "Importer",
    "Resolver",
    "is_blocked_address",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")
_NUMERIC = re.compile(r"^[0-9a-fA-FxX.]+$")
_BLOCKED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address the operating system returns for ``host``."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class ImportPolicy:
    allowed_ports: tuple[int, ...] = (80, 443)
    max_bytes: int = 1 << 30
    timeout: float = 60.0
    max_redirects: int = 5
    allow_loopback: bool = False
    """Local development only: also allow 127.0.0.0/8 and ::1 (and any port)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    blob: BlobInfo
    content_type: str


class ImportSource(Protocol):
    """Something that can fetch a reference into a local file."""

    def handles(self, ref: str) -> bool: ...

    async def fetch(self, ref: str, into: Path, *, connection: str | None = None) -> Fetched: ...


def _unwrap(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip in _6TO4:
            return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return ip


def is_blocked_address(address: str, *, allow_loopback: bool = False) -> bool:
    """True unless ``address`` (after unwrapping) is global unicast (or loopback, when allowed)."""
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return True
    if allow_loopback and ip.is_loopback:
        return False
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _blocked() -> BadRequest:
    return BadRequest(
        "this URL cannot be imported: only public http(s) addresses on the allowed ports are reachable",
        hint="use a publicly reachable http:// or https:// URL on port 80 or 443",
    )


def _numeric_host(host: str) -> str | None:
    """The address a numeric host stands for (C library rules), or None for a name."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if _NUMERIC.fullmatch(host) and not host.endswith("."):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            raise _blocked() from None
    return None


def check_url(url: str, policy: ImportPolicy) -> httpx2.URL:
    if any(ord(c) < 0x21 or c == "\\" for c in url):
        raise _blocked()
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, ValueError):
        raise _blocked() from None
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
        raise _blocked()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if port not in policy.allowed_ports and not policy.allow_loopback:
        raise _blocked()
    if parsed.host.rstrip(".").lower() in _BLOCKED_NAMES and not policy.allow_loopback:
        raise _blocked()
    return parsed


class HttpImportSource:
    """``http(s)://`` URLs, fetched through the SSRF guard."""

    def __init__(
        self,
        *,
        policy: ImportPolicy | None = None,
        resolver: Resolver = system_resolver,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy or ImportPolicy()
        self._resolve = resolver
        self._transport = transport

    def handles(self, ref: str) -> bool:
        return ref.lower().startswith(("http://", "https://"))

    async def _pin(self, url: httpx2.URL) -> tuple[httpx2.URL, str]:
        """The URL rewritten to the one checked address, and the Host header to send."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        numeric = _numeric_host(host)
        if numeric is not None:
            addresses: Sequence[str] = [numeric]
        else:
            try:
                addresses = await self._resolve(host.rstrip("."), port)
            except OSError:
                raise _blocked() from None
        if not addresses or any(
            is_blocked_address(a, allow_loopback=self.policy.allow_loopback) for a in addresses
        ):
            raise _blocked()
        host_header = host if url.port is None else f"{host}:{url.port}"
        return url.copy_with(host=addresses[0]), host_header

    async def fetch(self, ref: str, into: Path, *, connection: str | None = None) -> Fetched:
        url = check_url(ref, self.policy)
        try:
            with anyio.fail_after(self.policy.timeout):
                return await self._follow(url, into)
        except TimeoutError:
            raise UpstreamTimeout(
                f"the download did not finish within {self.policy.timeout:g} s",
                hint="import a smaller file, or upload it with workspace.upload_url",
            ) from None

    async def _follow(self, url: httpx2.URL, into: Path) -> Fetched:
        async with httpx2.AsyncClient(
            transport=self._transport, trust_env=False, follow_redirects=False, timeout=self.policy.timeout
        ) as client:
            for _ in range(self.policy.max_redirects + 1):
                pinned, host = await self._pin(url)
                extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
                headers = {"Host": host, "Accept-Encoding": "identity", "User-Agent": "toolbridge-import"}
                request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
                try:
                    response = await client.send(request, stream=True)
                except httpx2.HTTPError as exc:
                    raise UpstreamError(
                        f"the download failed: {type(exc).__name__}", hint="check that the URL works"
                    ) from exc
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = check_url(str(url.join(response.headers["location"])), self.policy)
                        continue
                    if response.status_code >= 400:
                        raise UpstreamError(
                            f"the server answered {response.status_code}", hint="check that the URL works"
                        )
                    return await self._save(response, into)
                finally:
                    await response.aclose()
        raise BadRequest(
            f"the URL redirected more than {self.policy.max_redirects} times", hint="import the final URL"
        )

    async def _save(self, response: httpx2.Response, into: Path) -> Fetched:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise PayloadTooLarge("the file to import", size=int(declared), limit=self.policy.max_bytes)
        size = 0
        async with await anyio.open_file(into, "wb") as f:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.policy.max_bytes:
                    raise PayloadTooLarge("the file to import", size=size, limit=self.policy.max_bytes)
                await f.write(chunk)
        blob = await anyio.to_thread.run_sync(hash_file, into)
        content_type = response.headers.get("content-type", "application/octet-stream")
        return Fetched(blob, content_type.split(";")[0].strip()[:128])


class Importer:
    """Imports references into workspace files through the first :class:`ImportSource` that handles them."""

    def __init__(self, sources: Sequence[ImportSource]) -> None:
        self.sources = list(sources)

    async def import_into(
        self,
        service: Workspaces,
        principal: Principal,
        workspace: str,
        ref: str,
        path: str,
        *,
        lease: str | None = None,
        connection: str | None = None,
    ) -> Entry:
        source = next((s for s in self.sources if s.handles(ref)), None)
        if source is None:
            raise _blocked()
        await service.info(principal, workspace)  # 404 before any traffic for a workspace one cannot see
        fd, name = tempfile.mkstemp(dir=service.blobs.scratch, prefix="import-")
        os.close(fd)
        temp = Path(name)
        started = time.monotonic()
        try:
            fetched = await source.fetch(ref, temp, connection=connection)
            return await service.commit(
                principal,
                workspace,
                path,
                temp,
                fetched.blob,
                content_type=fetched.content_type,
                lease=lease,
                source="import",
                metadata={"source_url": ref[:1000], "import_seconds": f"{time.monotonic() - started:.3f}"},
            )
        finally:
            await anyio.Path(temp).unlink(missing_ok=True)
