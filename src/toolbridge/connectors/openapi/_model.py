"""The connector's inside: operations, parameters, bodies, security schemes and the ingest report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Body",
    "BodyField",
    "FixedValue",
    "IngestReport",
    "Issue",
    "Operation",
    "Parameter",
    "SecurityScheme",
    "Server",
]

Location = Literal["path", "query", "header", "cookie"]
Shape = Literal["primitive", "array", "object"]
BodyKind = Literal["json", "form", "multipart", "binary", "text", "none"]


@dataclass(frozen=True, slots=True)
class Parameter:
    """One path, query, header or cookie parameter and the tool argument that carries it."""

    name: str
    location: Location
    arg: str
    required: bool
    style: str
    explode: bool
    shape: Shape
    allow_reserved: bool = False
    content_type: str | None = None
    """Set when the parameter is described by ``content`` (the value is sent JSON-encoded)."""


@dataclass(frozen=True, slots=True)
class FixedValue:
    """A header or parameter set by toolbridge, never asked of the agent (Accept, version headers…)."""

    name: str
    location: Location
    value: str


@dataclass(frozen=True, slots=True)
class BodyField:
    """A body property exposed as its own argument (``arg``) — its wire name is ``name``."""

    name: str
    arg: str
    binary: bool = False
    content_type: str | None = None
    encoding: str | None = None
    """``base64`` or ``base64url`` when the file travels as that text (3.1 ``contentEncoding``)."""
    style: str | None = None
    """A form field's serialization, from its Encoding Object (``deepObject`` …; None: ``form``)."""
    explode: bool | None = None


@dataclass(frozen=True, slots=True)
class Body:
    """The request body: one media type, either spread into arguments or carried by one argument."""

    media_type: str
    kind: BodyKind
    required: bool
    arg: str | None = None
    """The argument holding the whole body, when it is not spread into fields."""
    fields: tuple[BodyField, ...] = ()
    encoding: str | None = None
    """``base64`` or ``base64url`` when a binary body travels as that text (3.1 ``contentEncoding``)."""


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """A security scheme of the document, reduced to what a request needs."""

    name: str
    type: str
    """``apiKey``, ``http``, ``oauth2``, ``openIdConnect`` or ``mutualTLS``."""
    location: str | None = None
    param: str | None = None
    scheme: str | None = None
    """For ``http``: ``basic`` or ``bearer`` (lower case)."""
    description: str = ""

    def describe(self) -> str:
        if self.type == "apiKey":
            return f"API key in {self.location} {self.param!r}"
        if self.type == "http":
            return f"HTTP {self.scheme} credentials"
        return {"oauth2": "OAuth 2 access token", "openIdConnect": "OpenID Connect access token"}.get(
            self.type, self.type
        )


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    variables: Mapping[str, str] = field(default_factory=dict)

    def resolved(self) -> str:
        url = self.url
        for name, value in self.variables.items():
            url = url.replace("{" + name + "}", value)
        return url


@dataclass(frozen=True, slots=True)
class Operation:
    """Everything needed to turn a tool call into a request."""

    tool: str
    method: str
    path: str
    operation_id: str | None
    pointer: str
    parameters: tuple[Parameter, ...]
    fixed: tuple[FixedValue, ...]
    body: Body | None
    security: tuple[tuple[str, ...], ...]
    """Alternatives (any one suffices), each a set of scheme names required together."""
    servers: tuple[Server, ...] = ()
    accept: str | None = None
    tags: tuple[str, ...] = ()
    pages_arg: str | None = None
    """The optional argument that lets one call ask for fewer or more pages (up to the connector's)."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One operation not turned into a tool (``skipped``/``excluded``) or turned into a lesser one."""

    kind: Literal["skipped", "degraded", "excluded"]
    pointer: str
    reason: str
    operation: str = ""

    def __str__(self) -> str:
        name = f" ({self.operation})" if self.operation else ""
        return f"{self.kind}: {self.pointer}{name}: {self.reason}"


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What came out of a document: how many operations became tools, and every issue on the way."""

    source: str
    version: str
    operations: int
    tools: int
    issues: tuple[Issue, ...] = ()
    error: str | None = None
    """Set when the document could not be used at all (the connector then has no tools)."""
    about: str = ""
    """One line on what the API is for: the document's title and the first sentence of its description."""

    def of_kind(self, kind: str) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.kind == kind)

    @property
    def skipped(self) -> tuple[Issue, ...]:
        return self.of_kind("skipped")

    @property
    def degraded(self) -> tuple[Issue, ...]:
        return self.of_kind("degraded")

    @property
    def excluded(self) -> tuple[Issue, ...]:
        return self.of_kind("excluded")

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: not loaded: {self.error}"
        return (
            f"{self.source} ({self.version}): {self.operations} operations, {self.tools} tools, "
            f"{len(self.skipped)} skipped, {len(self.degraded)} degraded, {len(self.excluded)} excluded"
        )
