"""URL import, guarded against SSRF (RELIABILITY.md G), and the seam for cloud-drive imports.

Every hop (the first request and each of at most 5 redirects) goes through the hub's SSRF guard
(:mod:`toolbridge._urlguard`): public http(s) addresses on the allowed ports only, the checked address
pinned. The download ignores proxy settings from the environment (``trust_env=False``), caps bytes and
total time, and asks for ``identity`` encoding so a compression bomb is stored, not expanded.

**Cloud drives** (Google Drive, Dropbox, Box, OneDrive) plug in as further :class:`ImportSource`
implementations: ``handles(ref)`` recognises their references (``gdrive:<file id>``, share links) and
``fetch`` downloads with the caller's *connection* (credentials resolved by the hub's credentials layer)
into the given temporary file. :class:`Importer` picks the first source that handles a reference and
commits the file like an upload (lease and quota checked at commit).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import httpx2

from toolbridge._httpclient import closing_transport
from toolbridge._urlguard import Resolver, URLGuard, is_blocked_address, system_resolver
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


@dataclass(frozen=True, slots=True)
class ImportPolicy:
    allowed_ports: tuple[int, ...] | None = None
    """The ports URLs may name (None: 80 and 443; with ``allow_loopback``, loopback on any port). When
    given, they bind loopback addresses too."""
    max_bytes: int = 1 << 30
    timeout: float = 60.0
    max_redirects: int = 5
    allow_loopback: bool = False
    """Local development only: also allow 127.0.0.0/8 and ::1 (see ``allowed_ports``)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    blob: BlobInfo
    content_type: str


class ImportSource(Protocol):
    """Something that can fetch a reference into a local file."""

    def handles(self, ref: str) -> bool: ...

    async def fetch(self, ref: str, into: Path, *, connection: str | None = None) -> Fetched: ...


def _guard(policy: ImportPolicy) -> URLGuard:
    return URLGuard(
        refusal="this URL cannot be imported: "
        "only public http(s) addresses on the allowed ports are reachable",
        hint="use a publicly reachable http:// or https:// URL on port 80 or 443",
        allowed_ports=policy.allowed_ports or (80, 443),
        allow_loopback=policy.allow_loopback,
        loopback_ports=policy.allowed_ports,
    )


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
        self._guard = _guard(self.policy)
        self._resolve = resolver
        self._transport = transport

    def handles(self, ref: str) -> bool:
        return ref.lower().startswith(("http://", "https://"))

    async def fetch(self, ref: str, into: Path, *, connection: str | None = None) -> Fetched:
        url = self._guard.check(ref)
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
            transport=self._transport or closing_transport(),
            trust_env=False,
            follow_redirects=False,
            timeout=self.policy.timeout,
        ) as client:
            for _ in range(self.policy.max_redirects + 1):
                headers = {"Accept-Encoding": "identity", "User-Agent": "toolbridge-import"}
                request = client.build_request("GET", url, headers=headers)
                await self._guard.pin_request(request, self._resolve)
                try:
                    response = await client.send(request, stream=True)
                except httpx2.HTTPError as exc:
                    raise UpstreamError(
                        f"the download failed: {type(exc).__name__}", hint="check that the URL works"
                    ) from exc
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = self._redirect(url, response.headers["location"])
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

    def _redirect(self, url: httpx2.URL, location: str) -> httpx2.URL:
        """The redirect's target, through the guard; one httpx2 cannot parse (``0177.0.0.1``) is refused."""
        try:
            target = url.join(location)
        except (httpx2.InvalidURL, ValueError):
            raise self._guard.blocked() from None
        return self._guard.check(str(target))

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
            raise _guard(ImportPolicy()).blocked()
        # before any traffic: 404 for a workspace one cannot see, 403 for a viewer or someone else's lease
        await service.check_upload(principal, workspace, path, 0, lease)
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
