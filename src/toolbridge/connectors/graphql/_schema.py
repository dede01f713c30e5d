"""Where a GraphQL connector's schema comes from: an SDL file, an introspection result, or the endpoint.

``schema:`` names a file beside the configuration: SDL (``schema.graphql``) or the JSON of an introspection
query (``{"data": {"__schema": …}}`` or ``{"__schema": …}``). Without it the schema is fetched once, when
the connector is built, by sending the standard introspection query to the endpoint — through the hub's
SSRF guard (:mod:`toolbridge._urlguard`) as a remote OpenAPI document is, so a private address is reached
only when the operator lists it in ``allow_hosts``. Introspection goes without credentials: for an API
that requires them (GitHub's), save the schema to a file and point ``schema:`` at it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx2
from graphql import (
    GraphQLError,
    GraphQLSchema,
    build_ast_schema,
    build_client_schema,
    get_introspection_query,
    parse,
    validate_schema,
)
from graphql.validation.validate import validate_sdl

from toolbridge import _jsonin as jsonin
from toolbridge._urlguard import SyncResolver, URLGuard, system_addresses
from toolbridge.errors import BadRequest, ConfigurationError

__all__ = ["MAX_SCHEMA_BYTES", "introspect", "load_schema", "parse_schema"]

MAX_SCHEMA_BYTES = 32 * 1024 * 1024
_ERROR_BYTES = 64 * 1024
"""Bytes of a refused introspection answer read for its messages."""
logger = logging.getLogger("toolbridge.connectors.graphql")


def load_schema(path: Path, *, max_bytes: int = MAX_SCHEMA_BYTES) -> GraphQLSchema:
    """The schema in the file at ``path`` (SDL or an introspection result)."""
    try:
        if path.stat().st_size > max_bytes:
            raise ConfigurationError(
                f"{path}: the schema is over the limit of {max_bytes:,} bytes",
                hint="raise max_schema_bytes for this connector if the schema is really this large",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: no such file", hint="check the connector's 'schema' path"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_schema(data.decode("utf-8-sig", errors="replace"), str(path))


def parse_schema(text: str, where: str) -> GraphQLSchema:
    """SDL, or the JSON of an introspection result, as a schema.

    Leniently, as real schemas need: one that breaks a rule of the specification without making its
    types unusable (GitHub's defines two fields twice, and deprecates fields its interfaces do not) is
    used anyway, the problems logged as a warning; a reference to an undefined type is an error."""
    try:
        if text.lstrip().startswith("{"):
            schema = build_client_schema(_introspection(jsonin.loads(text.encode()), where))
            problems: list[GraphQLError] = []
        else:
            document = parse(text)
            problems = list(validate_sdl(document))
            schema = build_ast_schema(document, assume_valid_sdl=True)
    except (GraphQLError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{where}: not a usable GraphQL schema: {str(exc).splitlines()[0][:300]}",
            hint="give the schema as SDL or as the JSON result of an introspection query",
        ) from None
    problems += validate_schema(schema)
    if not problems:
        return schema
    shown = "; ".join(p.message for p in problems[:3])
    logger.warning(
        "%s: the schema breaks %d rule(s) of GraphQL, used anyway: %s", where, len(problems), shown
    )
    return GraphQLSchema(
        query=schema.query_type,
        mutation=schema.mutation_type,
        subscription=schema.subscription_type,
        types=list(schema.type_map.values()),
        directives=schema.directives,
        description=schema.description,
        extensions=schema.extensions,
        ast_node=schema.ast_node,
        extension_ast_nodes=schema.extension_ast_nodes,
        assume_valid=True,  # graphql-core validates documents only against a valid schema
    )


def _introspection(document: Any, where: str) -> Any:
    if isinstance(document, dict) and isinstance(document.get("data"), dict):
        document = document["data"]
    if not isinstance(document, dict) or not isinstance(document.get("__schema"), dict):
        raise ConfigurationError(
            f"{where}: the JSON holds no '__schema' (not an introspection result)",
            hint="save the answer of an introspection query, or the SDL, to the schema file",
        )
    return document


def introspect(
    endpoint: str,
    *,
    transport: httpx2.BaseTransport | None = None,
    timeout: float = 30.0,
    max_bytes: int = MAX_SCHEMA_BYTES,
    allow_hosts: Iterable[str] = (),
    resolver: SyncResolver = system_addresses,
) -> GraphQLSchema:
    """Ask ``endpoint`` for its schema (the introspection query, no credentials, no redirect followed)."""
    guard = URLGuard(
        refusal="refused by the SSRF guard: only public http(s) addresses on ports 80 and 443 are fetched",
        hint="if this host is trusted, list it in the connector's allow_hosts (toolbridge add graphql: "
        "--allow-host HOST[:PORT]), or give 'schema:' as a file",
        allow_hosts=frozenset(h.lower() for h in allow_hosts),
    )
    try:
        checked = guard.check(endpoint)
        pinned, host = guard.pin_sync(checked, resolver)
    except BadRequest as exc:
        raise ConfigurationError(f"{endpoint}: {exc.message}", hint=exc.hint) from None
    extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
    body = {"query": get_introspection_query(descriptions=True), "operationName": "IntrospectionQuery"}
    headers = {"Host": host, "Accept": "application/graphql-response+json, application/json"}
    with httpx2.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        request = client.build_request("POST", pinned, json=body, headers=headers, extensions=extensions)
        text = _answer(client, request, endpoint, max_bytes)
    return parse_schema(text, f"{endpoint} (introspection)")


def _answer(client: httpx2.Client, request: httpx2.Request, endpoint: str, max_bytes: int) -> str:
    try:
        response = client.send(request, stream=True)
        try:
            data = _read(response, endpoint, max_bytes)
        finally:
            response.close()
    except httpx2.HTTPError as exc:
        raise ConfigurationError(
            f"{endpoint}: cannot fetch the schema: {type(exc).__name__}: {exc}",
            hint="check the endpoint and that the server is reachable, or give 'schema:' as a file",
        ) from None
    return _errors_checked(data.decode("utf-8", errors="replace"), endpoint)


def _read(response: httpx2.Response, endpoint: str, max_bytes: int) -> bytes:
    if 300 <= response.status_code < 400:
        raise ConfigurationError(
            f"{endpoint}: introspection answered HTTP {response.status_code} (a redirect: not followed)",
            hint="write the URL it redirects to as the endpoint, or give 'schema:' as a file",
        )
    refused = response.status_code >= 400  # its body says why: read (a little of) it
    parts: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > (_ERROR_BYTES if refused else max_bytes):
            if refused:
                break
            raise ConfigurationError(
                f"{endpoint}: the introspection result is over {max_bytes:,} bytes",
                hint="raise max_schema_bytes for this connector",
            )
        parts.append(chunk)
    data = b"".join(parts)
    if refused:
        said = _messages(data.decode("utf-8", errors="replace"))
        raise ConfigurationError(
            f"{endpoint}: introspection answered HTTP {response.status_code}" + (f": {said}" if said else ""),
            hint=_why_refused(response.status_code, said),
        )
    return data


def _errors_checked(text: str, endpoint: str) -> str:
    try:
        answer = jsonin.loads(text.encode())
    except ValueError as exc:
        raise ConfigurationError(
            f"{endpoint}: the introspection answer is not JSON toolbridge can read ({str(exc)[:100]})",
            hint="check that the endpoint is the API's GraphQL URL, or give 'schema:' as a file",
        ) from None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors and not (isinstance(answer.get("data"), dict) and answer["data"].get("__schema")):
        said = _messages(text) or str(errors)[:300]
        raise ConfigurationError(f"{endpoint}: introspection failed: {said}", hint=_why_refused(200, said))
    return text


def _messages(text: str) -> str:
    """The first messages of a GraphQL (or REST) error answer, or "" when it holds none."""
    try:
        answer = jsonin.loads(text.encode())
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    errors = answer.get("errors", [answer] if "message" in answer else [])
    errors = [errors] if isinstance(errors, dict) else errors if isinstance(errors, list) else []
    said = [str(e.get("message") if isinstance(e, dict) else e) for e in errors[:2]]
    return "; ".join(m for m in said if m)[:300]


def _why_refused(status: int, said: str) -> str:
    to_file = "save the schema, SDL or an introspection result, to a file and give it as 'schema:' "
    to_file += "(to toolbridge add graphql: --schema FILE)"
    if status in (401, 403):
        return f"the API wants credentials for introspection, which is sent without them: {to_file}"
    if "introspection" in said.lower():
        return f"the API turns introspection off: {to_file}"
    return f"check that the endpoint is the API's GraphQL URL; or {to_file}"
