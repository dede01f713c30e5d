"""HTTP for connectors: send one request and translate what httpx2 raises into toolbridge's errors, once.

Whether bytes may have reached the upstream decides if a write can be retried, so transport errors are
split by phase: connecting (nothing sent) versus writing or reading (maybe sent).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from toolbridge.errors import UpstreamStatusError, UpstreamUnavailable
from toolbridge.resilience import parse_ratelimit, parse_retry_after

__all__ = ["excerpt", "send"]

_NOT_SENT = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.InvalidURL,
)
_EXCERPT = 500


async def send(
    client: httpx2.AsyncClient,
    request: httpx2.Request,
    *,
    tool: str | None = None,
    hold: Callable[[float], None] | None = None,
) -> httpx2.Response:
    """Send ``request``; return a successful response (body read) or raise an upstream error."""
    try:
        response = await client.send(request)
        await response.aread()
    except _NOT_SENT as exc:
        raise UpstreamUnavailable(
            f"cannot reach {request.url.host}: {type(exc).__name__}: {exc}",
            sent=False,
            tool=tool,
            hint="the service may be down; try again later",
        ) from exc
    except httpx2.TransportError as exc:
        raise UpstreamUnavailable(
            f"{request.method} {request.url.host}{request.url.path} failed after sending: "
            f"{type(exc).__name__}: {exc or 'no detail'}",
            sent=True,
            tool=tool,
        ) from exc
    _note_quota(response, hold)
    if response.is_error:
        raise _status_error(request, response, tool)
    return response


def _note_quota(response: httpx2.Response, hold: Callable[[float], None] | None) -> None:
    info = parse_ratelimit(response.headers.get("ratelimit"))
    if hold is not None and info is not None and info.remaining == 0 and info.reset:
        hold(info.reset)


def _status_error(
    request: httpx2.Request, response: httpx2.Response, tool: str | None
) -> UpstreamStatusError:
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    body = excerpt(response)
    return UpstreamStatusError(
        f"{request.method} {request.url.path} returned {response.status_code} {response.reason_phrase}",
        upstream_status=response.status_code,
        retry_after=retry_after,
        body=body,
        tool=tool,
        hint=_hint(response.status_code, retry_after),
    )


def _hint(status: int, retry_after: float | None) -> str | None:
    if retry_after is not None:
        return f"the service asks to retry after {retry_after:g} s"
    if status in (400, 422):
        return "the service rejected the arguments; read its message and correct them"
    if status == 404:
        return "the resource does not exist; check identifiers"
    if status == 403:
        return "the connected account lacks permission for this"
    return None


def excerpt(response: httpx2.Response) -> str | None:
    """The start of an error body, as text (secrets are not expected in error bodies, but it is capped)."""
    if not response.content:
        return None
    text = response.content[:_EXCERPT].decode(errors="replace")
    return text + ("…" if len(response.content) > _EXCERPT else "")
