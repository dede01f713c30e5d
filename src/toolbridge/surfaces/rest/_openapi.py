"""The REST API's OpenAPI document, ``/v1/openapi.json``: FastAPI's, completed with what FastAPI cannot see.

- every operation's error answers: RFC 9457 problem documents (``application/problem+json``) with the
  statuses that operation can give, instead of FastAPI's ``422 HTTPValidationError`` (this API answers an
  invalid request with a 400 problem);
- authentication as security schemes (``Authorization: Bearer <key>`` or ``X-API-Key``), not as header
  parameters of each operation;
- the workspace routes under ``/workspaces``, which are plain Starlette routes (they stream files and speak
  tus), described here by hand.

The document is built once per application and checked from outside by schemathesis
(``tests/e2e/test_rest_fuzz.py``): every status, content type and header an operation answers with is in
it, and every route the server has is in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["MAX_DIGITS", "complete_document"]

MAX_DIGITS = 18
"""The workspace routes' numbers (query and headers) are 1 to 18 digits: below the 64 bits the database
stores, and a bound a pattern can state exactly (``^[0-9]{1,18}$``)."""
_DIGITS = f"^[0-9]{{1,{MAX_DIGITS}}}$"

_PROBLEM_TYPE = "application/problem+json"

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document: what was wrong, where, and how to fix it",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "the HTTP status"},
        "detail": {"type": "string", "description": "what was wrong, and where"},
        "code": {"type": "string", "description": "a stable machine code (tool_not_found, rate_limited …)"},
        "hint": {"type": "string", "description": "how to fix it"},
        "instance": {"type": "string"},
    },
}

_WHY = {
    400: "The request is not valid: the problem says what was wrong, where, and how to fix it",
    401: "No API key, or one that is unknown or revoked (or a signed URL that is void or expired), with "
    "WWW-Authenticate; or, without it, the account behind the tool must be connected again "
    "(reconnect_required, not_connected, connect_required: the hint says how)",
    403: "The caller may see the resource but not do this (role, quota, quarantined tool)",
    404: "No such resource, or one the caller may not see (the two look alike)",
    406: "The Accept header allows no JSON answer: send Accept: application/json, or none",
    409: "A conflict: the same idempotency key in flight, a lost lease, a stale version",
    412: "A precondition failed (If-Match, X-Expected-Version, Tus-Resumable, a checksum)",
    413: "The request body is larger than the server accepts",
    415: "The body's Content-Type is not one this operation takes (Accept-Post names the one it does)",
    416: "The range asked for lies outside the file",
    422: "The tool refused the arguments (or the upstream did, with its own 422)",
    423: "The file is leased by another holder",
    429: "Rate limited: Retry-After says when to try again",
    460: "The uploaded chunk does not match its Upload-Checksum",
    502: "The upstream failed or answered with an error",
    503: "An upstream or the database is unavailable, or its breaker is open: Retry-After when known",
    504: "The upstream did not answer in time (for a write: its outcome is unknown)",
}

# every authenticated operation (all answer JSON: 406); the statuses an operation adds are in _EXTRA, by
# (method, path), and an operation with a body adds 415
_BASE = (400, 401, 406, 413, 429, 503)
# what a call through the hub to a tool (and its upstream) can add
_CALL = (403, 404, 409, 412, 422, 423, 502, 504)
_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/tools"): (404,),  # a connector or tag the caller has no tool of
    ("get", "/tools/{name}"): (404,),
    ("post", "/tools/{name}/call"): _CALL,
    ("get", "/health/connectors"): (),
    ("get", "/metrics"): (403,),  # not an operator
    ("get", "/capabilities"): (),
    ("get", "/outbox"): (),
    ("get", "/outbox/{item_id}"): (404,),
    ("get", "/calls"): (),
    ("get", "/connections"): (),
    ("post", "/connections"): (403, 404, 409),
    ("post", "/connections/connect"): (403, 404, 409, 502, 504),
    ("get", "/connections/{ident}"): (404,),
    ("post", "/connections/{ident}/test"): _CALL,
    ("delete", "/connections/{ident}"): (403, 404),
    ("get", "/events/subscriptions"): _CALL,
    ("get", "/events"): _CALL,
    ("post", "/runs"): _CALL,
    ("get", "/runs"): (),
    ("get", "/runs/{run_id}"): _CALL,
    ("post", "/runs/{run_id}/cancel"): (404, 409),
}


def complete_document(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document, completed (see the module's docstring); cached on the app."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=[{"url": "/v1"}],
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = _PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an agent's API key"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
    }
    doc["security"] = [{"bearer": []}, {"apiKey": []}]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            _complete(operation, method, path)
    doc["paths"].update(_workspace_paths())
    doc["paths"].update(_server_paths())
    app.openapi_schema = doc
    return doc


def _complete(operation: dict[str, Any], method: str, path: str) -> None:
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)  # FastAPI's HTTPValidationError: this API answers 400 with a problem
    operation["parameters"] = [
        p
        for p in operation.get("parameters", [])
        if not (p["in"] == "header" and p["name"].lower() in ("authorization", "x-api-key"))
    ]
    if not operation["parameters"]:
        del operation["parameters"]
    if (method, path) == ("get", "/connections/callback"):
        _callback(operation)
        return
    if (method, path) == ("post", "/tools/{name}/call"):
        responses["200"]["description"] = "The tool's result"
        responses["202"] = {"description": "A write queued for a later retry: Location names it"}
    responses.update(_errors(_BASE + _EXTRA[(method, path)] + ((415,) if "requestBody" in operation else ())))


def _callback(operation: dict[str, Any]) -> None:
    """The OAuth redirect target answers a person's browser with a page, not JSON, and needs no key."""
    operation["security"] = [{}]
    operation["parameters"] = [
        _query("state", "the flow's state, from the authorization URL", required=True, minLength=1),
        _query("code", "the authorization code"),
        _query("error", "the provider's error, when the person declined or it failed"),
        _query("error_description", "the provider's words for the error"),
    ]
    page = {"text/html": {"schema": {"type": "string"}}}
    operation["responses"] = {
        "200": {"description": "Connected: a page saying so", "content": page},
        **{
            str(s): {"description": _WHY[s] + " (a page)", "content": page} for s in (400, 401, 403, 404, 409)
        },
        **{str(s): {"description": _WHY[s] + " (a page)", "content": page} for s in (429, 502, 503, 504)},
    }


def _errors(statuses: Iterable[int]) -> dict[str, Any]:
    return {str(status): _error(status) for status in sorted(set(statuses))}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _WHY[status],
        "content": {_PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": _header("seconds to wait before trying again", "integer")}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": _header("Bearer", "string")}
    elif status == 415:
        response["headers"] = {"Accept-Post": _header("application/json (on a POST)", "string")}
    return response


def _header(description: str, kind: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


def _query(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return _param("query", name, description, required, schema)


def _number(
    name: str, description: str, kind: str = "integer", *, read: bool = True, **bounds: float
) -> dict[str, Any]:
    if kind == "integer" and read:  # a number the route reads: more is a 400 (MAX_DIGITS)
        bounds.setdefault("maximum", 10**MAX_DIGITS - 1)
    return _param("query", name, description, False, {"type": kind, **bounds})


def _in_header(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return _param("header", name, description, required, schema)


def _param(where: str, name: str, description: str, required: bool, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema if "type" in schema else {"type": "string", **schema},
    }


# -- the workspace routes (surfaces/rest/_workspace.py) ---------------------------------------------

_WS = {
    "name": "ws",
    "in": "path",
    "required": True,
    "description": "the workspace's id or name",
    "schema": {"type": "string"},
}
_UPLOAD = {"name": "upload", "in": "path", "required": True, "schema": {"type": "string"}}
# a workspace path (workspace/_paths.py): "/"-separated names, no control characters or backslashes, no
# "." or ".." names; at most 255 bytes a name and 1,024 a path (here: 63 and 256 characters)
_NAME_CHAR = r"[^/\x00-\x1f\x7f\\]"
_FIRST_CHAR = r"[^/\s\x00-\x1f\x7f\\.]"
_NAME = rf"(?:{_FIRST_CHAR}{_NAME_CHAR}{{0,62}}|\.{_FIRST_CHAR}{_NAME_CHAR}{{0,61}}|\.\.{_NAME_CHAR}{{1,61}})"
PATH_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": 256, "pattern": rf"^/?{_NAME}(?:/{_NAME})*$"}
_FOLDER_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 256,
    "pattern": rf"^/$|^/?{_NAME}(?:/{_NAME})*$",
}
_PATH = {
    "name": "path",
    "in": "query",
    "required": True,
    "description": "the file's path in the workspace, e.g. /reports/q3.pdf",
    "schema": PATH_SCHEMA,
}
_TUS = _in_header("Tus-Resumable", "the tus protocol version", required=True, enum=["1.0.0"])
_SIGNED = [
    _query("by", "signed URL: who it was issued to"),
    _number("v", "signed URL: the version it names (0: the latest)", read=False, minimum=0),
    _number("exp", "signed URL: when it expires (Unix time)", read=False, minimum=0),
    _query("k", "signed URL: the key it was issued under"),
    _query("sig", "signed URL: its signature; with it, no API key is needed"),
]
_SIGNED_OR_KEY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {}]
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
_TUS_HEADERS = {"Tus-Resumable": _header("1.0.0", "string")}
_WORKSPACE_BASE = (400, 401, 404, 429, 503)


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: Iterable[int] = (),
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": ["workspaces"], "summary": summary}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if security is not None:
        operation["security"] = security
    answers_json = any(answer.get("content") is _JSON_OBJECT for answer in ok.values())
    reads_json = body is not None and "application/json" in body["content"]
    media = (406,) * answers_json + (415,) * reads_json
    operation["responses"] = {**ok, **_errors((*_WORKSPACE_BASE, *errors, *media))}
    return operation


def _ok(status: int, description: str, **extra: Any) -> dict[str, Any]:
    return {str(status): {"description": description, **extra}}


def _json_ok(status: int, description: str) -> dict[str, Any]:
    return _ok(status, description, content=_JSON_OBJECT)


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_CALLED = (403, 422)  # through Hub.call as a workspace tool: 422 when it refuses the arguments
_FILE_OPS = (*_CALLED, 409, 423)


def _workspace_paths() -> dict[str, Any]:
    return {**_workspace_reads(), **_file_content(), **_workspace_writes(), **_tus_paths()}


def _workspace_reads() -> dict[str, Any]:
    return {
        "/workspaces/": {
            "get": _op("The workspaces the caller is a member of", _json_ok(200, "The workspaces")),
            "post": _op(
                "Create a workspace; the caller becomes its owner",
                _json_ok(201, "The new workspace"),
                (403, 409, 413),
                body=_json_body({"name": {"type": "string", "minLength": 1, "maxLength": 128}}, ["name"]),
            ),
        },
        "/workspaces/{ws}": {
            "get": _op(
                "A workspace: its name, the caller's role, quota and use",
                _json_ok(200, "It"),
                (),
                parameters=[_WS],
            )
        },
        "/workspaces/{ws}/files": {
            "get": _op(
                "The files and folders in a folder",
                _json_ok(200, "The folder's entries"),
                _CALLED,
                parameters=[
                    _WS,
                    {"name": "path", "in": "query", "description": "the folder (default /)"}
                    | {"schema": _FOLDER_SCHEMA},
                    _query("trashed", "list the trash instead", enum=["true", "false", "1", "0"]),
                ],
            )
        },
        "/workspaces/{ws}/stat": {
            "get": _op("One file's metadata", _json_ok(200, "The file"), _CALLED, parameters=[_WS, _PATH])
        },
        "/workspaces/{ws}/versions": {
            "get": _op("A file's versions", _json_ok(200, "Its versions"), _CALLED, parameters=[_WS, _PATH])
        },
    }


_ANY_FILE = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
"""A download answers with the type the file was stored with (the PUT's Content-Type, tus's filetype)."""


def _file_content() -> dict[str, Any]:
    download = _op(
        "Download a file (or one version of it); Range and If-None-Match are honoured",
        {
            **_ok(200, "The file, with the Content-Type it was stored with", content=_ANY_FILE),
            **_ok(206, "The range asked for", content=_ANY_FILE),
            **_ok(304, "Not modified (If-None-Match named the current ETag)"),
        },
        (403, 416),
        parameters=[
            _WS,
            _PATH,
            _number("version", "one version of the file (default: the latest)", minimum=1),
            _in_header("Range", "one byte range, e.g. bytes=0-1023"),
            _in_header("If-None-Match", "the ETag you have"),
            *_SIGNED,
        ],
        security=_SIGNED_OR_KEY,
    )
    upload = _op(
        "Store a file (a new version of it); the body is its content",
        {**_json_ok(200, "A new version of the file"), **_json_ok(201, "The file's first version")},
        (*_FILE_OPS, 412),
        parameters=[
            _WS,
            _PATH,
            _in_header("X-Lease", "the lease you hold on the file"),
            _in_header("X-Expected-Version", "store only if this is the current version", pattern=_DIGITS),
            _in_header("If-Match", "store only if this is the current ETag (or *)", minLength=1),
            *_SIGNED,
        ],
        body={"required": True, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
        security=_SIGNED_OR_KEY,
    )
    remove = _op(
        "Move a file to the trash",
        _json_ok(200, "The trashed file"),
        _FILE_OPS,
        parameters=[_WS, _PATH, _in_header("X-Lease", "the lease you hold on the file")],
    )
    return {"/workspaces/{ws}/content": {"get": download, "put": upload, "delete": remove}}


def _workspace_writes() -> dict[str, Any]:
    return {
        "/workspaces/{ws}/changes": {
            "get": _op(
                "Changes after a cursor; long-polls with wait > 0",
                _json_ok(200, "The changes and the next cursor"),
                _CALLED,
                parameters=[
                    _WS,
                    _number("cursor", "from the previous answer (default 0)", minimum=0),
                    _number("limit", "how many changes at most (default 100)", minimum=1, maximum=500),
                    _number("wait", "seconds to wait for a first change", "number", minimum=0, maximum=30),
                ],
            )
        },
        "/workspaces/{ws}/import": {
            "post": _op(
                "Store a file fetched from a URL (the server fetches it, guarded against internal addresses)",
                _json_ok(201, "The stored file"),
                (*_FILE_OPS, 412, 413, 502, 504),
                parameters=[_WS],
                body=_json_body(
                    {
                        "url": {"type": "string", "format": "uri"},
                        "path": PATH_SCHEMA,
                        "lease": {"type": "string", "minLength": 1},
                    },
                    ["url", "path"],
                ),
            )
        },
    }


def _tus_paths() -> dict[str, Any]:
    return {**_tus_collection(), **_tus_upload()}


def _tus_collection() -> dict[str, Any]:
    return {
        "/workspaces/{ws}/uploads": {
            "options": _op(
                "tus: the server's protocol versions, extensions and size limit",
                _ok(204, "What the server supports", headers=_TUS_HEADERS),
                parameters=[_WS],
                security=[{}],
            ),
            "post": _op(
                "tus: create a resumable upload; Location names it",
                _ok(
                    201,
                    "The upload",
                    headers={**_TUS_HEADERS, "Location": _header("the upload's URL", "string")},
                ),
                (*_FILE_OPS, 412, 413),
                parameters=[
                    _WS,
                    _TUS,
                    _in_header("Upload-Length", "the file's size in bytes", required=True, pattern=_DIGITS),
                    _in_header("Upload-Metadata", "tus metadata: path (required), filetype, sha256, lease"),
                    *_SIGNED,
                ],
                security=_SIGNED_OR_KEY,
            ),
        },
    }


def _tus_upload() -> dict[str, Any]:
    tus_status = {**_TUS_HEADERS, "Upload-Offset": _header("bytes received so far", "integer")}
    return {
        "/workspaces/{ws}/uploads/{upload}": {
            "head": _op(
                "tus: how many bytes of the upload have been received",
                _ok(200, "The upload's offset and length", headers=tus_status),
                (412,),
                parameters=[_WS, _UPLOAD, _TUS],
                security=[{}],
            ),
            "patch": _op(
                "tus: append bytes at Upload-Offset; the file is stored when the last byte arrives",
                _ok(204, "The bytes were appended", headers=tus_status),
                (*_FILE_OPS, 412, 413, 415, 460),
                parameters=[
                    _WS,
                    _UPLOAD,
                    _TUS,
                    _in_header("Upload-Offset", "where these bytes start", required=True, pattern=_DIGITS),
                    _in_header("Upload-Checksum", "sha256 <base64 digest> of these bytes"),
                ],
                body={
                    "required": True,
                    "content": {
                        "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                security=[{}],
            ),
            "delete": _op(
                "tus: abandon an upload",
                _ok(204, "The upload and its bytes are gone", headers=_TUS_HEADERS),
                (403, 412),
                parameters=[_WS, _UPLOAD, _TUS],
                security=[{}],
            ),
        },
    }


def _server_paths() -> dict[str, Any]:
    """The routes outside ``/v1`` (surfaces/app.py), each with its own server ``/``: webhooks in, health and
    the index. ``/mcp`` speaks MCP, whose specification is its document; ``/v1/docs`` and this document are
    documentation."""
    source = {"name": "source", "in": "path", "required": True, "description": "its name under hooks:"}
    hook: dict[str, Any] = {
        "tags": ["events"],
        "summary": "Receive a webhook: verified on the raw body by the source's verifier, recorded, answered",
        "security": [{}],  # the signature authenticates it
        "parameters": [source | {"schema": {"type": "string"}}],
        "requestBody": {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "responses": {
            **_ok(
                200,
                "Recorded ({id, duplicate}), or Slack's url_verification {challenge}",
                content=_JSON_OBJECT,
            ),
            **_errors((400, 401, 404, 413, 503)),
        },
    }
    unsigned = hook["responses"]["401"]
    unsigned["description"] = "Unsigned, badly signed, or signed too long ago"
    del unsigned["headers"]  # no WWW-Authenticate: the sender signs, it presents no key
    return {
        "/hooks/{source}": {"servers": _ROOT, "post": hook},
        "/healthz": {"servers": _ROOT, "get": _plain_get("Liveness: {status: ok | starting, tools: N}")},
        "/": {"servers": _ROOT, "get": _plain_get("Where MCP, REST, this document and webhooks are served")},
    }


_ROOT = [{"url": "/", "description": "the server's own routes, outside /v1"}]


def _plain_get(summary: str) -> dict[str, Any]:
    return {"tags": ["server"], "summary": summary, "security": [{}], "responses": _json_ok(200, "It")}
