"""Read an OpenAPI or Swagger document, and every file its relative ``$ref``s reach, from a file or URL.

This is the wire edge of the connector: bytes in, parsed JSON values out. Documents are capped in size
before they are parsed, and every failure names the file or URL it happened in.

A document is not trusted to choose what the hub reads (its ``$ref``s end up in tool schemas every agent
sees): ``file:`` references are followed only inside the folder of a local root document, or inside the
folder the operator names as the connector's ``spec_root`` (Azure's documents refer to shared files in
``../../../../../common-types/``), never from a document read over the network; and every URL — the
spec URL, remote ``$ref``s, each redirect — goes through the hub's SSRF guard (:mod:`toolbridge._urlguard`)
unless its host is in the operator's ``allow_hosts``. A refused reference is reported like a missing one:
the operations that need it are skipped or degraded, with the reason, and the rest of the document is
used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

import httpx2
import yaml

from toolbridge._suggest import close_matches
from toolbridge._urlguard import SyncResolver, URLGuard, system_addresses
from toolbridge.errors import BadRequest, ConfigurationError

__all__ = ["MAX_SPEC_BYTES", "SpecSource", "load_spec", "parse_document", "to_uri"]

MAX_SPEC_BYTES = 32 * 1024 * 1024
"""Documents larger than this are refused before parsing (the largest real ones are ~3 MB)."""

_EXTERNAL_REF = re.compile(rb"""\$ref['"]?\s*:\s*(?!['"]?#)""")
_CHUNK = 65536
_MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class SpecSource:
    """A document and the files it refers to, keyed by absolute URI (``file:///…`` or ``https://…``)."""

    uri: str
    documents: Mapping[str, Any]
    missing: Mapping[str, str] = field(default_factory=dict)
    """URIs referred to that could not be loaded, with the reason."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """SHA-256 of every document's bytes, by URI (what a cache entry must still match)."""

    @property
    def root(self) -> Any:
        return self.documents[self.uri]

    @property
    def is_remote(self) -> bool:
        return urlsplit(self.uri).scheme in ("http", "https")


def load_spec(
    location: str | Path,
    *,
    max_bytes: int = MAX_SPEC_BYTES,
    transport: httpx2.BaseTransport | None = None,
    timeout: float = 30.0,
    allow_hosts: Iterable[str] = (),
    resolver: SyncResolver = system_addresses,
    spec_root: str | Path | None = None,
) -> SpecSource:
    """Load the document at ``location`` (path or http(s) URL) and every file its ``$ref``s reach.

    ``allow_hosts`` (``host`` or ``host:port``) may be reached although not public; ``resolver`` gives the
    addresses of a host name (injected by tests). ``spec_root``: the folder whose files a local document
    may refer to (default: the document's own folder); it must hold the document."""
    uri = to_uri(location)
    guard = URLGuard(
        refusal="refused by the SSRF guard: only public http(s) addresses on ports 80 and 443 are fetched",
        hint="if this host is trusted, list it in the connector's allow_hosts "
        "(toolbridge add openapi: --allow-host HOST[:PORT])",
        allow_hosts=frozenset(h.lower() for h in allow_hosts),
    )
    reader = _Reader(max_bytes, transport, timeout, _Fence(uri, guard, resolver, _folder(uri, spec_root)))
    try:
        root = reader.document(uri)
        _check_is_spec(root, uri)
        documents, missing = reader.follow(uri, root)
    finally:
        reader.close()
    return SpecSource(uri, documents, missing, reader.digests)


def parse_document(data: bytes, uri: str) -> Any:
    """Parse JSON (tried first: some JSON is not valid YAML) or YAML; errors name the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{uri}: not a text document ({exc.reason} at byte {exc.start})",
            hint="point 'spec' at an OpenAPI document in JSON or YAML",
        ) from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if uri.endswith(".json"):
                raise ConfigurationError(
                    f"{uri}:{exc.lineno}: not valid JSON: {exc.msg}", hint="fix or replace the document"
                ) from None
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{uri}:{mark.line + 1}" if mark is not None else uri
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            f"{where}: neither JSON nor YAML: {problem}", hint="point 'spec' at an OpenAPI document"
        ) from None


_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_uri(location: str | Path) -> str:
    """The absolute URI of a path or URL (``file:///…`` for paths)."""
    text = str(location)
    if urlsplit(text).scheme in ("http", "https", "file"):
        return text
    return Path(text).resolve().as_uri()


def _check_is_spec(root: Any, uri: str) -> None:
    if isinstance(root, dict) and ("openapi" in root or "swagger" in root):
        version = str(root.get("openapi") or root.get("swagger"))
        if version.startswith(("2.", "3.0", "3.1", "3.2")):
            return
        raise ConfigurationError(
            f"{uri}: OpenAPI version {version!r} is not supported",
            hint="toolbridge reads Swagger 2.0 and OpenAPI 3.0 / 3.1 documents",
        )
    raise ConfigurationError(
        f"{uri}: not an OpenAPI or Swagger document (no top-level 'openapi' or 'swagger' key)",
        hint="point 'spec' at the API's OpenAPI document (often openapi.json or swagger.yaml)",
    )


def _folder(uri: str, spec_root: str | Path | None) -> Path | None:
    """The folder a local document's ``$ref``s may read in: ``spec_root`` (which must hold the document),
    else the document's own folder; None for a document read over the network."""
    if urlsplit(uri).scheme != "file":
        if spec_root is not None:
            raise ConfigurationError(
                f"{uri}: spec_root applies to a document on disk, not to one read over the network",
                hint="remove spec_root, or download the document's files and point 'spec' at the local copy",
            )
        return None
    document = Path(url2pathname(urlsplit(uri).path)).resolve()
    if spec_root is None:
        return document.parent
    folder = Path(spec_root).resolve()
    if not document.is_relative_to(folder):
        raise ConfigurationError(
            f"{document}: the document is not inside spec_root {folder}",
            hint="set spec_root to a folder that holds the document and every file it refers to",
        )
    return folder


@dataclass(frozen=True, slots=True)
class _Fence:
    """What a document may make the hub read: files in its folder (or spec_root), public or allowed URLs."""

    root: str
    guard: URLGuard
    resolver: SyncResolver
    folder: Path | None
    """Where a local document's files may be (None: the document was read over the network)."""

    def local(self, path: Path, uri: str) -> Path:
        """``path`` when the root document is a local file and ``path`` is inside its folder or spec_root."""
        if self.folder is None:
            raise ConfigurationError(
                f"{uri}: refused: a document read over the network cannot refer to local files"
            )
        if uri == self.root:
            return path
        if not path.resolve().is_relative_to(self.folder):
            what = "spec_root" if self.folder != self._own_folder() else "the folder of the root document"
            raise ConfigurationError(
                f"{uri}: refused: outside {self.folder}, {what} (set the connector's spec_root to a folder "
                "holding every file of the document)",
                hint="set the connector's spec_root to a folder that holds every file of the document",
            )
        return path

    def _own_folder(self) -> Path:
        return Path(url2pathname(urlsplit(self.root).path)).resolve().parent

    def remote(self, url: str) -> tuple[httpx2.URL, dict[str, str], dict[str, Any]]:
        """The URL to connect to (the checked address), its headers and extensions — or refused."""
        try:
            checked = self.guard.check(url)
            pinned, host = self.guard.pin_sync(checked, self.resolver)
        except BadRequest as exc:
            raise ConfigurationError(f"{url}: {exc.message}", hint=exc.hint) from None
        extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
        return pinned, {"Host": host}, extensions


class _Reader:
    """Reads files and URLs; the HTTP client is created on the first URL (it costs ~0.1 s to make)."""

    def __init__(
        self, max_bytes: int, transport: httpx2.BaseTransport | None, timeout: float, fence: _Fence
    ) -> None:
        self._fence = fence
        self._max = max_bytes
        self._transport = transport
        self._timeout = timeout
        self._client: httpx2.Client | None = None
        self._texts: dict[str, bytes] = {}
        self.digests: dict[str, str] = {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _http(self) -> httpx2.Client:
        if self._client is None:
            self._client = httpx2.Client(
                transport=self._transport, timeout=self._timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    def document(self, uri: str) -> Any:
        data = self._fetch(uri)
        self._texts[uri] = data
        self.digests[uri] = hashlib.sha256(data).hexdigest()
        return parse_document(data, uri)

    def follow(self, uri: str, root: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Load every document reachable through relative ``$ref``s (breadth first)."""
        documents: dict[str, Any] = {uri: root}
        missing: dict[str, str] = {}
        queue = [uri]
        while queue:
            current = queue.pop()
            if not _EXTERNAL_REF.search(self._texts[current]):
                continue
            for target in sorted(set(_external_refs(documents[current], current))):
                if target in documents or target in missing:
                    continue
                try:
                    documents[target] = self.document(target)
                except ConfigurationError as exc:
                    missing[target] = exc.message
                    continue
                queue.append(target)
        return documents, missing

    def _fetch(self, uri: str) -> bytes:
        if urlsplit(uri).scheme == "file":
            return self._read_file(self._fence.local(Path(url2pathname(urlsplit(uri).path)), uri), uri)
        return self._download(uri)

    def _read_file(self, path: Path, uri: str) -> bytes:
        try:
            size = path.stat().st_size
            self._check_size(size, uri)
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: no such file", hint=_missing_hint(path)) from None
        except IsADirectoryError:
            documents = _documents_in(path)
            raise ConfigurationError(
                f"{path}: this is a folder, not an OpenAPI document",
                hint=f"point 'spec' at the document itself, e.g. {path / documents[0]}"
                + (f" (the folder also holds {', '.join(documents[1:4])})" if documents[1:] else "")
                if documents
                else "point 'spec' at the API's OpenAPI document (.json or .yaml): this folder has none",
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from None

    def _download(self, uri: str) -> bytes:
        url = uri
        for _ in range(_MAX_REDIRECTS + 1):
            pinned, headers, extensions = self._fence.remote(url)
            request = self._http().build_request("GET", pinned, headers=headers, extensions=extensions)
            location, data = self._get(request, uri)
            if location is None:
                return data
            url = urljoin(url, location)  # each hop through the guard again
        raise ConfigurationError(f"{uri}: more than {_MAX_REDIRECTS} redirects", hint="use the final URL")

    def _get(self, request: httpx2.Request, uri: str) -> tuple[str | None, bytes]:
        """The redirect target, or None and the document's bytes."""
        try:
            response = self._http().send(request, stream=True)
            try:
                return self._answer(response, uri)
            finally:
                response.close()
        except httpx2.HTTPError as exc:
            raise ConfigurationError(
                f"{uri}: cannot fetch the document: {type(exc).__name__}: {exc}",
                hint="check the URL and that the server is reachable, or point 'spec' at a local file",
            ) from None

    def _answer(self, response: httpx2.Response, uri: str) -> tuple[str | None, bytes]:
        if response.is_redirect and "location" in response.headers:
            return response.headers["location"], b""
        if response.status_code >= 400:
            raise ConfigurationError(
                f"{uri}: the server answered HTTP {response.status_code}",
                hint="check the URL, or download the document and point 'spec' at the file",
            )
        declared = response.headers.get("content-length")
        if declared and declared.isdigit():
            self._check_size(int(declared), uri)
        return None, self._read_capped(response.iter_bytes(_CHUNK), uri)

    def _read_capped(self, chunks: Iterator[bytes], uri: str) -> bytes:
        parts: list[bytes] = []
        total = 0
        for chunk in chunks:
            total += len(chunk)
            self._check_size(total, uri)
            parts.append(chunk)
        return b"".join(parts)

    def _check_size(self, size: int, uri: str) -> None:
        if size > self._max:
            raise ConfigurationError(
                f"{uri}: the document is {size:,} bytes or more, over the limit of {self._max:,} bytes",
                hint="raise max_spec_bytes for this connector if the document is really this large",
            )


_DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


def _documents_in(folder: Path) -> list[str]:
    """The names of the files in ``folder`` that may be an API document, likeliest first (openapi.*,
    swagger.*, then by name)."""
    try:
        names = [p.name for p in folder.iterdir() if p.suffix.lower() in _DOCUMENT_SUFFIXES and p.is_file()]
    except OSError:
        return []
    return sorted(names, key=lambda n: (not n.lower().startswith(("openapi", "swagger")), n))


def _missing_hint(path: Path) -> str:
    """Where the missing document may be: a file of a close name beside it, else which folder is missing."""
    if not path.parent.is_dir():
        return f"check the 'spec' path: the folder {path.parent} does not exist"
    close = close_matches(path.name, _documents_in(path.parent), n=2)
    if close:
        return f"check the 'spec' path: did you mean {' or '.join(str(path.parent / c) for c in close)}?"
    return "check the 'spec' path"


def _external_refs(node: Any, base: str) -> Iterator[str]:
    """Absolute URIs (without fragment) of the non-local ``$ref``s in ``node``."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield urldefrag(urljoin(base, ref))[0]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
