"""GraphQL answers → results and errors.

- ``data`` holding the field, no ``errors``: the field's value (``null`` when the API found nothing);
- ``data`` holding the field, and ``errors`` (a partial result): ``{"errors": [...], "data": value}``;
- ``errors`` and no ``data`` (or a null field): :class:`~toolbridge.errors.UpstreamStatusError` with the
  messages and paths;
- HTTP 4xx / 5xx / 429: :class:`~toolbridge.errors.UpstreamStatusError` as for a REST API (``Retry-After``,
  hints), with the GraphQL messages of its body when it has them;
- an answer cut at ``max_response_bytes``: :class:`~toolbridge.errors.UpstreamError` saying to select less;
- anything else (not JSON, neither ``data`` nor ``errors``): :class:`~toolbridge.errors.UpstreamError`.

An ``errors`` answer at HTTP 200 keeps ``upstream_status`` 200: it is not retried (the API processed the
request and refused it) and does not count against the circuit breaker — unless its errors carry a code
that stands for an HTTP status (:data:`CODES`: ``extensions.code``, or GitHub's ``type``), as many APIs
answer 200 (or a plain 400, as ariadne does when ``data`` is null) where REST would answer that status:
then it is that status, and handled as an HTTP answer with it would be.
``UNAUTHENTICATED`` is a 401 (an OAuth connection is refreshed and the call sent again, once), Shopify's
``THROTTLED`` and GitHub's ``RATE_LIMITED`` a 429 (retried after the wait the answer implies), ``FORBIDDEN``
a 403, ``NOT_FOUND`` a 404, ``BAD_USER_INPUT`` and ``GRAPHQL_VALIDATION_FAILED`` a 400 (the agent's to
correct). A partial result (the field has data) is a result whatever the codes of its errors. The hub
masks the call's secrets in every message and result, as for every connector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from toolbridge import _jsonin as jsonin
from toolbridge.connectors.openapi._response import EXCERPT_CHARS, Page, status_error
from toolbridge.errors import UpstreamError, UpstreamStatusError

__all__ = ["CODES", "MAX_ERRORS", "result_of"]

MAX_ERRORS = 20
_SHOWN = 3
CODES: Mapping[str, int] = {
    # not signed in, or the token expired: Apollo Server's convention; Hasura's ("invalid-jwt", at 200)
    "UNAUTHENTICATED": 401,
    "INVALID_JWT": 401,
    # rate limited: Shopify ("THROTTLED", with the cost in the answer), GitHub ("RATE_LIMITED", now also
    # "RATE_LIMIT", as the error's type), and the name most servers choose
    "THROTTLED": 429,
    "RATE_LIMITED": 429,
    "RATE_LIMIT": 429,
    "TOO_MANY_REQUESTS": 429,
    # signed in, not allowed: Apollo, GitHub (type FORBIDDEN, INSUFFICIENT_SCOPES), Shopify, Hasura
    "FORBIDDEN": 403,
    "UNAUTHORIZED": 403,  # ambiguous: as 401 it would send a token request with every refused call
    "INSUFFICIENT_SCOPES": 403,
    "ACCESS_DENIED": 403,
    "PERMISSION_ERROR": 403,
    "NOT_FOUND": 404,
    # the request's input: Apollo (variables, the document), Hasura, Shopify (a query too costly)
    "BAD_USER_INPUT": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "GRAPHQL_PARSE_FAILED": 400,
    "VALIDATION_FAILED": 400,
    "PARSE_FAILED": 400,
    "DATA_EXCEPTION": 400,
    "MAX_COST_EXCEEDED": 400,
}
"""GraphQL error codes (upper case, ``-`` read as ``_``) that stand for an HTTP status; the first of 401,
429, 403, 404, 400 among an answer's errors is the answer's."""
_PRECEDENCE = (401, 429, 403, 404, 400)
_MEANS = {
    401: ("refused the credentials", "the API refused the credentials; check the connector's connection"),
    429: ("is rate limiting", "the API is rate limiting; {wait} before calling again"),
    403: (
        "refused the call",
        "the API refused the credentials or their scope; check the connector's connection",
    ),
    404: ("found nothing", "the API found nothing there; check the ids in the arguments"),
    400: (
        "refused the arguments",
        "correct the arguments or the selection the messages name, then call again",
    ),
}


def result_of(page: Page, tool: str, field: str) -> Any:
    """The result of one call from its answer, or the error it stands for."""
    answer, unreadable = _json(page)
    if page.status_code >= 400:
        errors = _errors(answer.get("errors")) if isinstance(answer, Mapping) else []
        if page.status_code == 400 and _coded_status(errors) is not None:  # a GraphQL answer's errors at a
            raise _graphql_error(page, answer, errors, tool)  # plain 400 (ariadne's when data is null)
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
            f"{page.media_type or 'no content type'}{unreadable})",
            tool=tool,
            hint="leave out what the API cannot send with 'select'; if it persists, tell the API's owner"
            if unreadable
            else "check the connector's endpoint: it should be the API's GraphQL URL",
        )
    errors = _errors(answer.get("errors"))
    data = answer.get("data")
    if not isinstance(data, Mapping) or field not in data or (errors and data[field] is None):
        if errors:
            raise _graphql_error(page, answer, errors, tool)
        raise UpstreamError(
            f"{tool!r}: the upstream's answer holds no data for the field {field!r}",
            tool=tool,
            hint="the API answered neither the field nor an error; check the connector's endpoint",
        )
    if errors:  # first: a result cut at the hub's cap keeps them (after the data, they were cut off)
        return {"errors": errors, "data": data.get(field)}
    return data.get(field)


def _json(page: Page) -> tuple[Any, str]:
    """The answer decoded, else None and why, when it is JSON toolbridge cannot use: nested too deeply (it
    failed the call as a toolbridge bug, RecursionError), a lone surrogate escape (UnicodeEncodeError
    where the result was written), NaN."""
    if page.truncated or not page.content:
        return None, ""
    try:
        return jsonin.loads(page.content), ""
    except ValueError as exc:
        json_said = "json" in page.media_type
        return None, f": {exc}" if json_said and not str(exc).startswith(("Expecting", "Extra data")) else ""


def _errors(raw: Any) -> list[dict[str, Any]]:
    """The errors an agent reads: message, path, the extensions' code; at most :data:`MAX_ERRORS`."""
    if isinstance(raw, Mapping):  # one error, not in a list
        raw = [raw]
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
        elif isinstance(entry.get("type"), str):  # GitHub's place for it
            error["code"] = entry["type"]
        kept.append(error)
    return kept


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:_SHOWN]:
        where = ".".join(str(p) for p in error.get("path", ()))
        parts.append(error["message"] + (f" (at {where})" if where else ""))
    more = len(errors) - _SHOWN
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _graphql_error(
    page: Page, answer: Mapping[str, Any], errors: list[dict[str, Any]], tool: str
) -> UpstreamStatusError:
    """The error an ``errors`` answer without the field's data stands for: at HTTP 200 (or a plain 400),
    the status its codes stand for (:data:`CODES`), if any."""
    meaning = _coded_status(errors) if page.status_code <= 400 else None
    body = json.dumps(errors)[:EXCERPT_CHARS]
    if meaning is None:
        return UpstreamStatusError(
            f"{tool!r}: the GraphQL API answered with errors: {_summary(errors)}",
            upstream_status=page.status_code,
            body=body,
            hint="read the messages: correct the arguments or the selection they name",
            tool=tool,
        )
    code = next(e["code"] for e in errors if CODES.get(_normal(e.get("code"))) == meaning)
    says, hint = _MEANS[meaning]
    wait = _wait(page, answer) if meaning == 429 else None
    return UpstreamStatusError(
        f"{tool!r}: the GraphQL API {says} ({code} at HTTP {page.status_code}, taken as {meaning}): "
        f"{_summary(errors)}",
        upstream_status=meaning,
        retry_after=wait,
        body=body,
        hint=hint.format(wait=f"wait {max(1, math.ceil(wait))} s" if wait is not None else "wait"),
        tool=tool,
    )


def _normal(code: Any) -> str:
    return code.upper().replace("-", "_") if isinstance(code, str) else ""


def _coded_status(errors: list[dict[str, Any]]) -> int | None:
    found = {CODES.get(_normal(e.get("code"))) for e in errors}
    return next((status for status in _PRECEDENCE if status in found), None)


def _wait(page: Page, answer: Mapping[str, Any]) -> float | None:
    """Seconds until a throttled call may pass: the answer's ``Retry-After``, else what Shopify's cost
    extension implies (the points missing at its restore rate)."""
    from toolbridge.resilience import parse_retry_after  # the resilience package: not for `tools list`

    header = parse_retry_after(page.headers.get("retry-after"))
    if header is not None:
        return header
    extensions = answer.get("extensions")
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    status = cost.get("throttleStatus") if isinstance(cost, Mapping) else None
    if not isinstance(cost, Mapping) or not isinstance(status, Mapping):
        return None
    needed = _number(cost.get("requestedQueryCost"))
    left, rate = _number(status.get("currentlyAvailable")), _number(status.get("restoreRate"))
    if needed is None or left is None or rate is None or rate <= 0:
        return None
    return max(0.0, (needed - left) / rate)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _with_messages(error: UpstreamStatusError, answer: Any) -> UpstreamStatusError:
    """A REST-style status error, with the GraphQL messages of its body in its message when it has them."""
    errors = _errors(answer.get("errors")) if isinstance(answer, Mapping) else []
    if errors:
        error.message = f"{error.message}: {_summary(errors)}"
    return error
