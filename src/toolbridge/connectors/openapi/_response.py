"""Responses → results: JSON decoded, text kept, binary summarised, errors typed; httpx2 errors translated."""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Mapping
from typing import Any

import httpx2

from toolbridge import _jsonin as jsonin
from toolbridge.errors import UpstreamStatusError, UpstreamUnavailable

__all__ = ["EXCERPT_CHARS", "Page", "decode", "status_error", "transport_error"]

EXCERPT_CHARS = 500
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)


class Page:
    """One response read into memory (at most the connector's cap of its body), whichever wire carried it."""

    __slots__ = ("content", "headers", "reason_phrase", "status_code", "truncated", "url")

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        url: str,
        content: bytes,
        truncated: bool,
        reason_phrase: str = "",
    ) -> None:
        self.status_code = status_code
        self.headers = headers  # case-insensitive look-ups (httpx2.Headers, multidict.CIMultiDictProxy)
        self.url = url
        self.content = content
        self.truncated = truncated
        self.reason_phrase = reason_phrase

    @classmethod
    def of(cls, response: httpx2.Response, content: bytes, truncated: bool) -> Page:
        return cls(
            response.status_code,
            response.headers,
            str(response.url),
            content,
            truncated,
            response.reason_phrase,
        )

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def encoding(self) -> str:
        """The charset the Content-Type names when Python knows it, else UTF-8 (as httpx2 decides)."""
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset":
                try:
                    return codecs.lookup(value.strip().strip("'\"")).name
                except LookupError:
                    break
        return "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    @property
    def links(self) -> dict[str | None, dict[str, str]]:
        """The ``Link`` header by ``rel`` (httpx2's parser), e.g. ``links["next"]["url"]``."""
        link = self.headers.get("link")
        if not link:
            return {}
        # as bytes: a str header is re-encoded as ASCII, and an upstream's raw UTF-8 in a next link failed
        # the call inside toolbridge (UnicodeEncodeError); the URL is then checked as any other
        return httpx2.Response(self.status_code, headers={b"link": link.encode()}).links


def decode(page: Page) -> Any:
    """The result an agent sees for a successful response."""
    if not page.content:
        return {"status": page.status_code}
    media = page.media_type
    if _is_json(media) and not page.truncated:
        try:
            return jsonin.loads(page.content)
        except ValueError as exc:  # said so: a body cut short by a wrong Content-Length read as a whole
            # answer; JSON nested too deeply (RecursionError failed the call as a toolbridge bug), a lone
            # surrogate escape (UnicodeEncodeError where the result was written), NaN
            why = (
                "not valid JSON"
                if isinstance(exc, json.JSONDecodeError)
                else f"not JSON toolbridge can use: {exc}"
            )
            return f"{page.text}\n[toolbridge: the upstream sent this as {media}, but it is {why}]"
    if _is_text(media) or not media:
        return _marked(page.text, page) if page.truncated else page.text
    return {
        "content_type": media,
        "size": int(page.headers.get("content-length") or len(page.content)),
        "note": "binary content is not shown to the agent",
    }


def _marked(text: str, page: Page) -> str:
    return f"{text}\n[toolbridge: response truncated at {len(page.content):,} bytes]"


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json") or media.endswith("/json")


def _is_text(media: str) -> bool:
    return media.startswith("text/") or _is_json(media) or media.endswith(("xml", "yaml", "javascript"))


def status_error(page: Page, tool: str) -> UpstreamStatusError:
    from toolbridge.resilience import parse_retry_after  # the resilience package: not for `tools list`

    status = page.status_code
    excerpt = page.text[:EXCERPT_CHARS].strip() if _is_text(page.media_type) or not page.media_type else ""
    retry_after = parse_retry_after(page.headers.get("retry-after"))
    return UpstreamStatusError(
        f"{tool!r}: the upstream answered HTTP {status} {page.reason_phrase}".rstrip(),
        upstream_status=status,
        retry_after=retry_after,
        body=excerpt or None,
        hint=_hint(status, retry_after),
        tool=tool,
    )


def _hint(status: int, retry_after: float | None = None) -> str:
    """What to do; with the upstream's ``Retry-After``, how long to wait (an agent reads the hint)."""
    wait = f"wait {max(1, math.ceil(retry_after))} s" if retry_after is not None else None
    if status in (401, 403):
        return "the upstream refused the credentials or their scope; check the connector's auth settings"
    if status == 404:
        return "the upstream found nothing there; check the ids in the arguments"
    if status == 429:
        return f"the upstream is rate limiting; {wait or 'wait'} before calling again"
    if status >= 500:
        return f"the upstream failed; {wait + ', then try again' if wait else 'try again later'}"
    return "the upstream rejected the request; read its error body and fix the arguments it names"


def transport_error(exc: httpx2.HTTPError, tool: str, url: str) -> UpstreamUnavailable:
    """The one place where httpx2 exceptions become ours (``sent`` tells the retry layer what is safe)."""
    where = httpx2.URL(url).copy_with(query=None)
    late = isinstance(exc, httpx2.TimeoutException)
    sent = not isinstance(exc, _NOT_SENT)
    # a connection lost after the request went out is not "cannot be reached": the upstream may have it
    problem = "did not answer in time" if late else "broke the connection" if sent else "cannot be reached"
    return UpstreamUnavailable(
        f"{tool!r}: {where} {problem}: {type(exc).__name__}: {exc}".rstrip(": "),
        sent=sent,
        tool=tool,
        hint="try again later; check the connector's base_url and timeout if it persists",
    )
