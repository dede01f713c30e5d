"""A loaded document → tools and operations, with a report of everything skipped, degraded or excluded."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.connectors.openapi._body import (
    BodyInput,
    choose_media_type,
    form_body,
    schema_body,
    sub,
    unique_arg,
)
from toolbridge.connectors.openapi._loader import SpecSource
from toolbridge.connectors.openapi._model import (
    FixedValue,
    IngestReport,
    Issue,
    Operation,
    Parameter,
    SecurityScheme,
    Server,
)
from toolbridge.connectors.openapi._naming import NameBook, arg_name, operation_name
from toolbridge.connectors.openapi._params import ArgSpec, ParamInput, read_parameter
from toolbridge.connectors.openapi._refs import Located, RefError, Resolver, pointer_of
from toolbridge.connectors.openapi._schema import Converted, SchemaConverter, brief, trim_text
from toolbridge.errors import ConfigurationError

__all__ = ["IngestOptions", "Ingested", "OperationFilter", "OperationOverride", "ingest"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PAGING_PARAMS = frozenset(
    [
        "cursor",
        "page",
        "offset",
        "page_token",
        "pageToken",
        "PageToken",
        "starting_after",
        "after",
        "next_token",
    ]
)
_PAGES_HINT = "pages to fetch and merge (toolbridge follows the next-page links; default: the connector's)"
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True, slots=True)
class OperationFilter:
    """Matches an operation when ANY listed criterion does (tags, path globs, methods, operationId globs)."""

    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()

    def match(self, op_id: str | None, tags: Sequence[str], method: str, path: str) -> str | None:
        """The criterion that matched, or None."""
        for tag in tags:
            if tag in self.tags:
                return f"tag {tag!r}"
        for glob in self.paths:
            if fnmatch.fnmatchcase(path, glob):
                return f"path {glob!r}"
        if method.upper() in {m.upper() for m in self.methods}:
            return f"method {method.upper()}"
        for glob in self.operations:
            if op_id is not None and fnmatch.fnmatchcase(op_id, glob):
                return f"operation {glob!r}"
        return None

    def __bool__(self) -> bool:
        return bool(self.tags or self.paths or self.methods or self.operations)


@dataclass(frozen=True, slots=True)
class OperationOverride:
    """Per-operation settings: keyed by operationId, tool operation name or ``"METHOD /path"``."""

    name: str | None = None
    description: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None


@dataclass(frozen=True, slots=True)
class IngestOptions:
    include: OperationFilter = field(default_factory=OperationFilter)
    exclude: OperationFilter = field(default_factory=OperationFilter)
    overrides: Mapping[str, OperationOverride] = field(default_factory=lambda: _EMPTY)
    description_max_chars: int = 300
    parameter_description_chars: int = 160
    max_pages: int = 1
    """When > 1, list operations with a paging parameter get an optional ``max_pages`` argument."""


@dataclass(frozen=True, slots=True)
class Ingested:
    tools: tuple[Tool, ...]
    operations: Mapping[str, Operation]
    schemes: Mapping[str, SecurityScheme]
    servers: tuple[Server, ...]
    report: IngestReport


def ingest(source: SpecSource, connector: str, options: IngestOptions | None = None) -> Ingested:
    """Turn every operation of ``source`` into a tool, or into an entry of the report saying why not."""
    return _Ingest(source, connector, options or IngestOptions()).run()


class _Ingest:
    def __init__(self, source: SpecSource, connector: str, options: IngestOptions) -> None:
        self.root: Mapping[str, Any] = source.root
        self.source = source
        self.connector = connector
        self.options = options
        self.swagger = "swagger" in self.root
        self.resolver = Resolver(source)
        version = str(self.root.get("openapi") or self.root.get("swagger"))
        self.version = ("Swagger " if self.swagger else "OpenAPI ") + version
        self.converter = SchemaConverter(
            self.resolver,
            nullable_keyword=not version.startswith("3.1"),
            description_chars=options.parameter_description_chars,
        )
        self.names = NameBook(connector)
        self.issues: list[Issue] = []

    def run(self) -> Ingested:
        tools: list[Tool] = []
        operations: dict[str, Operation] = {}
        count = 0
        for path, method, item, op in self._walk():
            count += 1
            built = self._one(path, method, item, op)
            if built is not None:
                tools.append(built[0])
                operations[built[0].name] = built[1]
        report = IngestReport(
            self.source.uri, self.version, count, len(tools), tuple(self.issues), about=_about(self.root)
        )
        return Ingested(tuple(tools), operations, _schemes(self.root, self.swagger), self._servers(), report)

    # -- walking -----------------------------------------------------------------------------------

    def _walk(self) -> Iterator[tuple[str, str, Located, Located]]:
        paths = self.root.get("paths")
        if not isinstance(paths, dict):
            return
        for path in paths:
            try:
                item = self.resolver.deref(self.resolver.at("paths", path))
            except RefError as exc:
                self.issues.append(Issue("skipped", exc.where, exc.message))
                continue
            if not isinstance(item.node, dict):
                continue
            for method in METHODS:
                if isinstance(item.node.get(method), dict):
                    yield str(path), method, item, sub(item, method)

    def _one(self, path: str, method: str, item: Located, at: Located) -> tuple[Tool, Operation] | None:
        try:
            op = self.resolver.deref(at)  # ``get: {$ref: resources/x.yml}``: common in large documents
        except RefError as exc:
            self.issues.append(Issue("skipped", exc.where, exc.message, f"{method.upper()} {path}"))
            return None
        if not isinstance(op.node, dict):
            self.issues.append(Issue("skipped", at.pointer, "the operation is not an object"))
            return None
        node = op.node
        op_id = node.get("operationId") if isinstance(node.get("operationId"), str) else None
        tags = tuple(str(t) for t in node.get("tags", []) if isinstance(t, str))
        if self._excluded(at, op_id, tags, method, path):
            return None
        notes: list[str] = []
        try:
            built = self._build(path, method, item, op, op_id, tags, notes)
        except RefError as exc:
            self.issues.append(Issue("skipped", exc.where, exc.message, op_id or ""))
            return None
        except ConfigurationError as exc:
            self.issues.append(Issue("skipped", at.pointer, str(exc), op_id or ""))
            return None
        built = (built[0], replace(built[1], pointer=at.pointer))
        if notes:
            self.issues.append(Issue("degraded", at.pointer, "; ".join(dict.fromkeys(notes)), built[0].name))
        return built

    def _excluded(
        self, op: Located, op_id: str | None, tags: tuple[str, ...], method: str, path: str
    ) -> bool:
        include, exclude = self.options.include, self.options.exclude
        if include and include.match(op_id, tags, method, path) is None:
            self.issues.append(Issue("excluded", op.pointer, "not matched by 'include'", op_id or ""))
            return True
        reason = exclude.match(op_id, tags, method, path) if exclude else None
        if reason is not None:
            self.issues.append(Issue("excluded", op.pointer, f"'exclude' matched {reason}", op_id or ""))
            return True
        return False

    # -- one operation -----------------------------------------------------------------------------

    def _build(
        self,
        path: str,
        method: str,
        item: Located,
        op: Located,
        op_id: str | None,
        tags: tuple[str, ...],
        notes: list[str],
    ) -> tuple[Tool, Operation]:
        inputs, body_params = self._parameters(item, op, notes)
        inputs.extend(_undeclared(path, inputs, notes))
        parameters, args, fixed, accept = _collect(inputs)
        taken = set(args)
        body = self._body(op, body_params, taken)
        if body is not None:
            args.update(body.args)
        pages_arg = self._pages_arg(method, parameters, args)
        for spec in args.values():
            notes.extend(spec.converted.notes)
        override = self._override(op_id, method, path)
        wanted = override.name or operation_name(op_id, method, path)
        name = self.names.claim(
            arg_name(wanted, cut=False).lower().replace(".", "_"), f"{method.upper()} {path}"
        )
        operation = Operation(
            tool=name,
            method=method.upper(),
            path=path,
            operation_id=op_id,
            pointer=op.pointer,
            parameters=tuple(parameters),
            fixed=tuple(fixed),
            body=body.body if body else None,
            security=self._security(op.node),
            servers=self._op_servers(item, op),
            accept=accept or self._accept(op),
            tags=tags,
            pages_arg=pages_arg,
        )
        tool = Tool(
            name=name,
            connector=self.connector,
            description=override.description or self._description(op.node, item.node, method, path),
            input_schema=_input_schema(args),
            annotations=_annotations(method, override, name, path, notes),
            tags=tags,
        )
        return tool, operation

    def _parameters(
        self, item: Located, op: Located, notes: list[str]
    ) -> tuple[list[ParamInput], list[Located]]:
        merged: dict[tuple[str, str], Located] = {}
        for owner in (item, op):
            raw = owner.node.get("parameters")
            if not isinstance(raw, list):
                continue
            base = sub(owner, "parameters")
            for i, value in enumerate(raw):
                param = self.resolver.deref(Located(value, base.uri, base.pointer + pointer_of(i)))
                if isinstance(param.node, dict):
                    merged[(str(param.node.get("name")), str(param.node.get("in")))] = param
                else:
                    notes.append(f"{self.resolver.where(param)}: a parameter that is not an object left out")
        chars = self.options.parameter_description_chars
        inputs: list[ParamInput] = []
        body_params: list[Located] = []
        for param in merged.values():
            if param.node.get("in") in ("body", "formData"):
                body_params.append(param)
                continue
            read = read_parameter(param, self.converter, swagger=self.swagger, chars=chars)
            if read is not None:
                inputs.append(read)
            else:
                notes.append(
                    f"{self.resolver.where(param)}: a parameter without a name or known 'in' left out"
                )
        return inputs, body_params

    def _body(self, op: Located, body_params: list[Located], taken: set[str]) -> BodyInput | None:
        if self.swagger:
            return self._swagger_body(op, body_params, taken)
        if "requestBody" not in op.node:
            return None
        request = self.resolver.deref(sub(op, "requestBody"))
        content = request.node.get("content") if isinstance(request.node, dict) else None
        if not isinstance(content, dict) or not content:
            return None
        # a form or multipart body needs named fields: one whose schema is an array or a primitive (Jira's
        # PUT /settings/columns offers multipart and */* for a list of names) goes as the next media type
        order = dict.fromkeys([choose_media_type(content) or next(iter(content)), *content])
        chosen: tuple[BodyInput, set[str]] | None = None
        for media in order:
            trial = set(taken)
            found = self._media_body(request, media, trial)
            chosen = chosen or (found, trial)
            if not _nameless(found):
                chosen = (found, trial)
                break
        assert chosen is not None  # content has at least one media type
        taken |= chosen[1]
        return chosen[0]

    def _media_body(self, request: Located, media: str, taken: set[str]) -> BodyInput:
        entry = sub(sub(request, "content"), media)
        schema = sub(entry, "schema") if isinstance(entry.node, dict) and "schema" in entry.node else None
        encoding = entry.node.get("encoding") if isinstance(entry.node, dict) else None
        return schema_body(
            media,
            schema,
            required=bool(request.node.get("required")),
            converter=self.converter,
            taken=taken,
            encoding=encoding if isinstance(encoding, dict) else None,
            description=brief(request.node.get("description"), self.options.parameter_description_chars),
        )

    def _swagger_body(self, op: Located, params: list[Located], taken: set[str]) -> BodyInput | None:
        consumes = _strings(op.node.get("consumes") or self.root.get("consumes"))
        forms = [p for p in params if p.node.get("in") == "formData"]
        if forms:
            chars = self.options.parameter_description_chars
            return form_body(forms, consumes, converter=self.converter, taken=taken, chars=chars)
        bodies = [p for p in params if p.node.get("in") == "body"]
        if not bodies:
            return None
        body = bodies[0]
        media = choose_media_type(consumes) or "application/json"
        schema = sub(body, "schema") if "schema" in body.node else None
        return schema_body(
            media,
            schema,
            required=bool(body.node.get("required")),
            converter=self.converter,
            taken=taken,
            description=brief(body.node.get("description"), self.options.parameter_description_chars),
        )

    # -- the rest of an operation ------------------------------------------------------------------

    def _pages_arg(
        self, method: str, parameters: Sequence[Parameter], args: dict[str, ArgSpec]
    ) -> str | None:
        limit = self.options.max_pages
        if limit <= 1 or method != "get" or not any(p.name in PAGING_PARAMS for p in parameters):
            return None
        name = unique_arg("max_pages", set(args), prefix="toolbridge_")
        schema = {"type": "integer", "minimum": 1, "maximum": limit, "description": _PAGES_HINT}
        args[name] = ArgSpec(schema, False, Converted(schema, {}))
        return name

    def _override(self, op_id: str | None, method: str, path: str) -> OperationOverride:
        overrides = self.options.overrides
        for key in (op_id, operation_name(op_id, method, path), f"{method.upper()} {path}"):
            if key is not None and key in overrides:
                return overrides[key]
        return OperationOverride()

    def _description(self, node: Mapping[str, Any], item: Mapping[str, Any], method: str, path: str) -> str:
        summary, detail = _text(node.get("summary")), _text(node.get("description"))
        if not summary and not detail:  # the path item's words cover all of its operations
            summary, detail = _text(item.get("summary")), _text(item.get("description"))
        text = summary
        if detail and detail != text:
            text = f"{text}\n\n{detail}" if text else detail
        if node.get("deprecated") is True:
            text = f"(deprecated) {text}"
        return trim_text(text, self.options.description_max_chars) or f"{method.upper()} {path}"

    def _security(self, node: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
        raw = node.get("security", self.root.get("security"))
        if not isinstance(raw, list):
            return ()
        return tuple(tuple(str(k) for k in entry) for entry in raw if isinstance(entry, dict))

    def _accept(self, op: Located) -> str | None:
        node = op.node
        if self.swagger:
            return choose_media_type(_strings(node.get("produces") or self.root.get("produces")))
        responses = node.get("responses")
        if not isinstance(responses, dict):
            return None
        media: list[str] = []
        for status, response in responses.items():
            if str(status).startswith("2") and isinstance(response, dict):
                if isinstance(response.get("$ref"), str):
                    response = self._response(Located(response, op.uri, op.pointer))
                content = response.get("content")
                media.extend(content if isinstance(content, dict) else [])
        return choose_media_type(media)

    def _response(self, located: Located) -> Mapping[str, Any]:
        try:
            found = self.resolver.deref(located)
        except RefError:
            return _EMPTY  # only the Accept header is read from responses: nothing to report
        return found.node if isinstance(found.node, dict) else _EMPTY

    def _servers(self) -> tuple[Server, ...]:
        if self.swagger:
            return _swagger_server(self.root)
        return _servers(self.root.get("servers"))

    def _op_servers(self, item: Located, op: Located) -> tuple[Server, ...]:
        if self.swagger:
            return ()
        return _servers(op.node.get("servers")) or _servers(item.node.get("servers"))


def _collect(
    inputs: Sequence[ParamInput],
) -> tuple[list[Parameter], dict[str, ArgSpec], list[FixedValue], str | None]:
    """Parameters with collision-free argument names (later locations get a location prefix)."""
    parameters: list[Parameter] = []
    args: dict[str, ArgSpec] = {}
    fixed: list[FixedValue] = []
    accept: str | None = None
    counts: dict[str, int] = {}
    for read in inputs:
        if read.parameter is not None:
            base = arg_name(read.parameter.name)
            counts[base] = counts.get(base, 0) + 1
    for read in sorted(inputs, key=lambda r: r.parameter is None or r.parameter.location != "path"):
        accept = read.accept or accept
        if read.fixed is not None:
            fixed.append(read.fixed)
        if read.parameter is None or read.arg is None:
            continue
        parameter = read.parameter
        arg = arg_name(parameter.name)
        if counts[arg] > 1 and parameter.location != "path":
            arg = arg_name(f"{parameter.location}_{parameter.name}")
        base, n = arg, 2
        while arg in args:
            arg, n = f"{base}_{n}", n + 1
        parameters.append(_with_arg(parameter, arg))
        args[arg] = read.arg
    return parameters, args, fixed, accept


def _undeclared(path: str, inputs: Sequence[ParamInput], notes: list[str]) -> list[ParamInput]:
    """A required string argument for each ``{name}`` of the path that no parameter declares."""
    declared = {i.parameter.name for i in inputs if i.parameter and i.parameter.location == "path"}
    declared |= {i.fixed.name for i in inputs if i.fixed and i.fixed.location == "path"}
    added: list[ParamInput] = []
    for name in dict.fromkeys(_TEMPLATE.findall(path)):
        if name in declared:
            continue
        notes.append(f"path parameter {name!r} is not declared; asked for as a required string")
        schema = {"type": "string", "minLength": 1}
        parameter = Parameter(name, "path", name, True, "simple", False, "primitive")
        added.append(ParamInput(parameter=parameter, arg=ArgSpec(schema, True, Converted(schema, {}))))
    return added


def _with_arg(parameter: Parameter, arg: str) -> Parameter:
    return replace(parameter, arg=arg)


def _input_schema(args: Mapping[str, ArgSpec]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: spec.schema for name, spec in args.items()},
    }
    required = [name for name, spec in args.items() if spec.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    defs: dict[str, Any] = {}
    for spec in args.values():
        defs.update(spec.converted.defs)
    if defs:
        schema["$defs"] = defs
    return schema


# A GET whose name changes something and reads nothing: Slack's document lists apps.uninstall, auth.revoke,
# views.update and ten more as GET. Read-only would let an agent with read scopes call them, and the
# retries meant for reads would repeat them. Over the GETs of GitHub's and Figma's documents and the others
# in ../shared/specs the rule marks no other ("download" and "export" read).
_WRITE_TEXT = """update delete remove create add set revoke uninstall invite kick archive unarchive rename
    post send upload approve restrict reset enable disable invalidate share open close request mark complete
    snooze join leave cancel start stop publish push completed failed"""
_READ_TEXT = """get list fetch retrieve read search lookup info history find count describe show view query
    check download export watch"""
_WRITE_WORDS = frozenset(_WRITE_TEXT.split())
_READ_WORDS = frozenset(_READ_TEXT.split())
_NOUNS_TEXT = "archive invite request share post open close start stop push publish upload"
_NOUNS_TOO = frozenset(_NOUNS_TEXT.split())
"""Writing verbs that are also what a resource path names (``/invites/{code}``,
``/containers/{id}/archive``)."""
_CAMEL = re.compile(r"[a-z][A-Z]")


def _writing_verb(name: str, path: str) -> str | None:
    """The verb that says a GET changes something, or None. In an RPC-style path (a method in its last
    segment: Slack's ``/apps.uninstall``, ``/sendMessage``) the operation's name is read for one; in a
    resource path the words are nouns, unless its last segment is plainly a verb (``/users/{id}/delete``)."""
    words = set(name.partition(".")[2].split("_"))  # the operation: "slack.apps_uninstall"
    if words & _READ_WORDS:
        return None
    literal = [segment for segment in path.split("/") if segment and not segment.startswith("{")]
    last = literal[-1] if literal else ""
    rpc = "." in last or _CAMEL.search(last) is not None
    verbs = words & _WRITE_WORDS if rpc else {last} & (_WRITE_WORDS - _NOUNS_TOO)
    return min(verbs) if verbs else None


def _annotations(
    method: str, override: OperationOverride, name: str, path: str, notes: list[str]
) -> ToolAnnotations:
    method = method.lower()
    read_only = method in ("get", "head", "options", "trace")
    verb = _writing_verb(name, path) if read_only and override.read_only is None else None
    if verb is not None:
        read_only = False
        notes.append(
            f"{method.upper()}, but its name says it changes something ({verb!r}) and reads nothing: not "
            "read-only and not retried as a read; if it only reads, say so with the operation's override "
            "read_only: true"
        )
    destructive = method == "delete"
    idempotent = read_only or method in ("put", "delete")
    if override.read_only is not None:
        read_only = override.read_only
        destructive = destructive and not read_only
    if override.destructive is not None:
        destructive = override.destructive
        read_only = read_only and not destructive
    if override.idempotent is not None:
        idempotent = override.idempotent
    return ToolAnnotations(read_only=read_only, destructive=destructive, idempotent=idempotent)


def _about(root: Mapping[str, Any], limit: int = 160) -> str:
    """The document's title and the first sentence of its description, on one line."""
    info = root.get("info")
    if not isinstance(info, Mapping):
        return ""
    title = " ".join(_text(info.get("title")).split())
    words = " ".join(_text(info.get("description")).split())
    sentence = re.split(r"(?<=[.!?])\s", words, maxsplit=1)[0] if words else ""
    line = f"{title}: {sentence}" if title and sentence and sentence != title else title or sentence
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _servers(raw: Any) -> tuple[Server, ...]:
    if not isinstance(raw, list):
        return ()
    servers: list[Server] = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            raw_vars = entry.get("variables")
            variables: dict[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
            defaults = {
                str(k): str(v.get("default", (v.get("enum") or [""])[0]))
                for k, v in variables.items()
                if isinstance(v, dict)
            }
            servers.append(Server(entry["url"], defaults))
    return tuple(servers)


def _swagger_server(root: Mapping[str, Any]) -> tuple[Server, ...]:
    base_path = str(root.get("basePath") or "")
    host = root.get("host")
    if not isinstance(host, str):
        return (Server(base_path or "/"),)
    schemes = _strings(root.get("schemes")) or ["https"]
    scheme = "https" if "https" in schemes else schemes[0]
    return (Server(f"{scheme}://{host}{base_path}"),)


def _schemes(root: Mapping[str, Any], swagger: bool) -> dict[str, SecurityScheme]:
    raw = (
        root.get("securityDefinitions") if swagger else (root.get("components") or {}).get("securitySchemes")
    )
    if not isinstance(raw, dict):
        return {}
    schemes: dict[str, SecurityScheme] = {}
    for name, node in raw.items():
        if not isinstance(node, dict) or "$ref" in node:
            continue
        kind = str(node.get("type", ""))
        scheme = str(node.get("scheme", "")).lower() or None
        if kind == "basic":
            kind, scheme = "http", "basic"
        schemes[str(name)] = SecurityScheme(
            name=str(name),
            type=kind,
            location=node.get("in") if isinstance(node.get("in"), str) else None,
            param=node.get("name") if isinstance(node.get("name"), str) else None,
            scheme=scheme,
            description=trim_text(node.get("description"), 200),
        )
    return schemes


def _nameless(found: BodyInput) -> bool:
    """A form or multipart body whose whole value is not an object: it has no field names to send."""
    body = found.body
    if body.kind not in ("form", "multipart") or body.arg is None:
        return False
    kind = found.args[body.arg].schema.get("type")
    return isinstance(kind, str) and kind != "object"
