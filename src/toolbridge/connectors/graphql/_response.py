"""GraphQL answers → results and errors.

- ``data`` holding the field, no ``errors``: the field's value (``null`` when the API found nothing);
- ``data`` holding the field, and ``errors`` (a partial result): ``{"data": value, "errors": [...]}``;
- ``errors`` and no ``data`` (or a null field): :class:`~toolbridge.errors.UpstreamStatusError` with the
  messages and paths;
- HTTP 4xx / 5xx / 429: :class:`~toolbridge.errors.UpstreamStatusError` as for a REST API (``Retry-After``,
  hints), with the GraphQL messages of its body when it has them;
- an answer cut at ``max_response_bytes``: :class:`~toolbridge.errors.UpstreamError` saying to select less;
- anything else (not JSON, neither ``data`` nor ``errors``): :class:`~toolbridge.errors.UpstreamError`.

An ``errors`` answer at HTTP 200 keeps ``upstream_status`` 200: it is not retried (the API processed the
request and refused it) and does not count against the circuit breaker. The hub masks the call's secrets
in every message and result, as for every connector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from toolbridge.connectors.openapi._response import EXCERPT_CHARS, Page, status_error
from toolbridge.errors import UpstreamError, UpstreamStatusError

__all__ = ["MAX_ERRORS", "result_of"]

MAX_ERRORS = 20
_SHOWN = 3
_AUTH_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "UNAUTHORIZED"})


def result_of(page: Page, tool: str, field: str) -> Any:
    """The result of one call from its answer, or the error it stands for."""
    answer = _json(page)
    if page.status_code >= 400:
        raise _with_messages(status_error(page, tool), answer)
    if page.truncated:
        raise UpstreamError(
            f"{tool!r}: the answer is larger than the connector's max_response_bytes "
            f"({len(page.content):,} bytes read), so it cannot be decoded",
            tool=tool,
            hint="ask for fewer fields or items with 'select' (and arguments such as first/limit), "
            "or raise max_response_bytes for this connector",
        )
    if not isinstance(answer, Mapping) or ("data" not in answer and "errors" not in answer):
        raise UpstreamError(
            f"{tool!r}: the upstream's answer is not a GraphQL response (HTTP {page.status_code}, "
            f"{page.media_type or 'no content type'})",
            tool=tool,
            hint="check the connector's endpoint: it should be the API's GraphQL URL",
        )
    errors = _errors(answer.get("errors"))
    data = answer.get("data")
    if not isinstance(data, Mapping) or field not in data or (errors and data[field] is None):
        if errors:
            raise _graphql_error(page.status_code, errors, tool)
        raise UpstreamError(
            f"{tool!r}: the upstream's answer holds no data for the field {field!r}",
            tool=tool,
            hint="the API answered neither the field nor an error; check the connector's endpoint",
        )
    if errors:
        return {"data": data.get(field), "errors": errors}
    return data.get(field)


def _json(page: Page) -> Any:
    if page.truncated or not page.content:
        return None
    try:
        return json.loads(page.content)
    except ValueError:
        return None


def _errors(raw: Any) -> list[dict[str, Any]]:
    """The errors an agent reads: message, path, the extensions' code; at most :data:`MAX_ERRORS`."""
    if not isinstance(raw, list):
        return [] if raw is None else [{"message": str(raw)[:EXCERPT_CHARS]}]
    kept: list[dict[str, Any]] = []
    for item in raw[:MAX_ERRORS]:
        entry = item if isinstance(item, Mapping) else {"message": item}
        error: dict[str, Any] = {"message": str(entry.get("message", ""))[:EXCERPT_CHARS]}
        if isinstance(entry.get("path"), list):
            error["path"] = entry["path"]
        extensions = entry.get("extensions")
        if isinstance(extensions, Mapping) and isinstance(extensions.get("code"), str):
            error["code"] = extensions["code"]
        kept.append(error)
    return kept


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:_SHOWN]:
        where = ".".join(str(p) for p in error.get("path", ()))
        parts.append(error["message"] + (f" (at {where})" if where else ""))
    more = len(errors) - _SHOWN
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _graphql_error(status: int, errors: list[dict[str, Any]], tool: str) -> UpstreamStatusError:
    codes = {e.get("code") for e in errors}
    if codes & _AUTH_CODES:
        hint = "the API refused the credentials or their scope; check the connector's connection"
    else:
        hint = "read the messages: correct the arguments or the selection they name"
    return UpstreamStatusError(
        f"{tool!r}: the GraphQL API answered with errors: {_summary(errors)}",
        upstream_status=status,
        body=json.dumps(errors)[:EXCERPT_CHARS],
        hint=hint,
        tool=tool,
    )


def _with_messages(error: UpstreamStatusError, answer: Any) -> UpstreamStatusError:
    """A REST-style status error, with the GraphQL messages of its body in its message when it has them."""
    errors = _errors(answer.get("errors")) if isinstance(answer, Mapping) else []
    if errors:
        error.message = f"{error.message}: {_summary(errors)}"
    return error
