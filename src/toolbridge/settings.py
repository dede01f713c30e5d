"""Typed settings and the ``toolbridge.yaml`` schema (pydantic lives here, at the edge, and nowhere inside).

:func:`load_settings` reports a mistake with the file, line, key, the valid choices and a "did you mean".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from toolbridge._connection_settings import (
    ApiKeyConnection,
    BasicConnection,
    BearerConnection,
    ClientCredentialsConnection,
    ConnectionSettings,
    HeaderConnection,
    JwtBearerConnection,
    OAuth2Connection,
    SigV4Connection,
    TokenExchangeConnection,
)
from toolbridge._settings_errors import config_error, line_of, yaml_hint
from toolbridge._telemetry_settings import TelemetrySettings, TraceSettings
from toolbridge.errors import ConfigFileError
from toolbridge.events._settings import EventSettings, HookSettings, SubscriptionSettings, TriggerSettings
from toolbridge.pipelines._config import PipelineSettings, PipelineWorkerSettings
from toolbridge.router._settings import CapabilitySettings

__all__ = [
    "AgentSettings",
    "ApiKeyConnection",
    "BasicConnection",
    "BearerConnection",
    "BreakerSettings",
    "ClientCredentialsConnection",
    "ConnectionSettings",
    "CredentialsSettings",
    "GraphQLConnectorSettings",
    "HeaderConnection",
    "JwtBearerConnection",
    "LimitSettings",
    "McpConnectorSettings",
    "OAuth2Connection",
    "OpenAPIConnectorSettings",
    "OpenAPIFilterSettings",
    "OpenAPIOperationSettings",
    "OpenAPIPaginationSettings",
    "OutlierSettings",
    "PythonConnectorSettings",
    "PythonToolSettings",
    "ResilienceSettings",
    "RetrySettings",
    "S3BlobSettings",
    "ServerSettings",
    "Settings",
    "SigV4Connection",
    "TelemetrySettings",
    "TokenExchangeConnection",
    "TraceSettings",
    "UrlImportSettings",
    "WorkspaceConnectorSettings",
    "load_settings",
    "located_error",
    "parse_settings",
]

DEFAULT_DATABASE = "sqlite+aiosqlite:///.toolbridge/toolbridge.db"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    database: str = DEFAULT_DATABASE
    """SQLAlchemy URL: SQLite file (default) or ``postgresql://user@host/db``."""
    database_pool: Annotated[int, Field(ge=1, le=1000)] = 20
    """PostgreSQL: connections this process keeps open for reuse (as many again in a burst). Raise it to
    the number of calls and pipeline runs a process has in flight at once; mind the server's
    ``max_connections`` across replicas."""
    redis: str | None = None
    """``redis://[:password@]host:6379/0`` (``rediss://`` for TLS, ``unix:///path.sock``): replicas share
    rate limits and upstream holds through it (docs/resilience.md); without it each process keeps its
    own. Checked at start: an unreachable Redis stops the process with one line saying why."""
    redis_prefix: Annotated[str, Field(min_length=1, max_length=100)] = "toolbridge:"
    """Prefix of toolbridge's Redis keys, for deployments that share one Redis."""
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    allowed_origins: list[str] = []
    """Browser origins allowed to call /mcp besides loopback ones."""
    public_url: str | None = None

    _redis_ok = pydantic.field_validator("redis")(lambda v: _valid_redis_url(v))


def _valid_redis_url(value: str | None) -> str | None:
    """A Redis URL redis-py can connect to; the error repeats it with its password masked."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    from toolbridge.resilience._ratelimit import redacted_redis_url

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is no number raises here, not at the first connection
    except ValueError as exc:
        raise ValueError(f"{redacted_redis_url(value)!r} is not a Redis URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError(
            f"{redacted_redis_url(value)!r} is not a Redis URL: write redis://HOST:6379/0 "
            "(rediss:// for TLS, unix:///path/to/redis.sock)"
        )
    return value


class LimitSettings(_Model):
    max_argument_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    max_result_bytes: Annotated[int, Field(gt=0)] = 65_536
    call_timeout: Annotated[float, Field(gt=0)] = 60.0


class RetrySettings(_Model):
    """Defaults: those of ``toolbridge.resilience.RetryPolicy`` (docs/resilience.md)."""

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    base_delay: Annotated[float, Field(ge=0)] = 0.5
    max_delay: Annotated[float, Field(ge=0)] = 10.0
    attempt_timeout: Annotated[float, Field(gt=0)] | None = 20.0
    max_retry_after: Annotated[float, Field(ge=0)] = 120.0
    budget_ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Retries in flight ≤ this share of the connector's active calls (at least ``budget_min``)."""
    budget_min: Annotated[int, Field(ge=0)] = 3
    throttle_max_tokens: Annotated[float, Field(gt=0)] = 100.0
    throttle_token_ratio: Annotated[float, Field(gt=0)] = 1.0


class BreakerSettings(_Model):
    enabled: bool = True
    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: Annotated[int, Field(ge=1)] = 100
    minimum_calls: Annotated[int, Field(ge=1)] = 20
    open_seconds: Annotated[float, Field(gt=0)] = 60.0
    half_open_calls: Annotated[int, Field(ge=1)] = 10


class OutlierSettings(_Model):
    """Outlier ejection of a per-user connector's connections (docs/resilience.md "Outlier ejection")."""

    enabled: bool = True
    consecutive_failures: Annotated[int, Field(ge=1)] = 5
    base_ejection_seconds: Annotated[float, Field(gt=0)] = 30.0
    max_ejection_seconds: Annotated[float, Field(gt=0)] = 300.0
    max_ejection_percent: Annotated[float, Field(ge=0, le=100)] = 10.0
    active_seconds: Annotated[float, Field(gt=0)] = 600.0


class ResilienceSettings(_Model):
    """Failure handling for one connector (docs/resilience.md)."""

    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    outlier: OutlierSettings = OutlierSettings()
    rate: str | None = None
    """Outbound limit such as '5000/hour'; toolbridge waits (bounded) instead of provoking 429s."""
    burst: Annotated[int, Field(ge=1)] | None = None
    max_rate_wait: Annotated[float, Field(ge=0)] = 10.0
    max_concurrent: Annotated[int, Field(ge=1)] = 64
    """Bulkhead: calls in progress at once; more wait up to ``max_queue_wait`` then get 503."""
    max_queue_wait: Annotated[float, Field(ge=0)] = 5.0
    on_exhausted: Literal["fail", "queue"] = "fail"
    """'queue': a write that failed transiently goes to the durable outbox and is retried by a worker."""

    _rate_ok = pydantic.field_validator("rate")(lambda v: _valid_rate(v))


def _valid_rate(value: str | None) -> str | None:
    """Reject a malformed rate where it is written (parse errors carry the file line)."""
    if value is not None:
        from toolbridge.errors import ConfigurationError
        from toolbridge.resilience import parse_rate

        try:
            parse_rate(value)
        except ConfigurationError as exc:
            raise ValueError(f"{exc.message}; {exc.hint}") from None
    return value


class CredentialsSettings(_Model):
    """The vault and the credential cache."""

    key_file: str = ".toolbridge/master.key"
    """Master key file (mode 0600), relative to the config file; TOOLBRIDGE_MASTER_KEY overrides it."""
    cache_ttl: Annotated[float, Field(ge=0)] = 5.0
    refresh_timeout: Annotated[float, Field(gt=0, le=300)] = 20.0
    """Seconds a token request (a refresh) may take before it is given up; a call waiting for it gives up
    at its own deadline first (``limits.call_timeout``), while the refresh goes on to this bound."""
    oauth_allow_hosts: list[str] = []
    """Hosts (``host`` or ``host:port``) an OAuth server found by discovery may be on although they are not
    public (an SSO server on the intranet)."""
    oauth_allow_loopback: bool = False
    """Local development only: OAuth servers found by discovery may be on 127.0.0.1 / ::1 (http too)."""


class _ConnectorBase(_Model):
    """Fields every connector kind has."""

    resilience: ResilienceSettings = ResilienceSettings()
    connections: ConnectionSettings | None = None
    """Credentials: connections to this connector ("github as alice") authenticate this way."""


class PythonToolSettings(_Model):
    function: str
    """``package.module:function``."""
    name: str | None = None
    description: str | None = None
    title: str | None = None
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False


class PythonConnectorSettings(_ConnectorBase):
    kind: Literal["python"]
    description: str | None = None
    module_path: str | None = None
    """Folder added to the import path, relative to the config file (default: the file's folder)."""
    tools: list[PythonToolSettings]


class S3BlobSettings(_Model):
    bucket: Annotated[str, Field(min_length=3)]
    prefix: str = "blobs/"
    endpoint_url: str | None = None
    """For S3-compatible stores (MinIO, R2, moto); omit for AWS."""
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None


class UrlImportSettings(_Model):
    enabled: bool = True
    max_bytes: Annotated[int, Field(gt=0)] = 1 << 30
    timeout: Annotated[float, Field(gt=0)] = 60.0
    allowed_ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = None
    """The ports imported URLs may name; by default 80 and 443 (and, with ``allow_loopback``, any port on
    loopback). When given, loopback addresses are held to them too."""
    allow_loopback: bool = False
    """Local development only: lets URL import reach 127.0.0.1 and ::1. Never enable it on a server."""


class WorkspaceConnectorSettings(_ConnectorBase):
    kind: Literal["workspace"]
    description: str | None = None
    workspace: str = "shared"
    """The workspace the tools use when a call names none (created on start)."""
    members: dict[str, Literal["owner", "admin", "editor", "viewer"]] = {}
    """Agent name → role in that workspace."""
    quota_bytes: Annotated[int, Field(gt=0)] | None = None
    credits_per_agent: Annotated[int, Field(gt=0)] | None = None
    blob_path: str | None = None
    """Folder for file contents, unless ``s3``: relative to the config file's folder; by default ``blobs``
    next to the SQLite database file (else ``.toolbridge/blobs`` beside the config file)."""
    s3: S3BlobSettings | None = None
    lease_ttl: Annotated[float, Field(ge=1, le=3600)] = 120.0
    max_lease_ttl: Annotated[float, Field(ge=1, le=3600)] = 3600.0
    inline_bytes: Annotated[int, Field(gt=0, le=1_048_576)] = 1_048_576
    url_ttl: Annotated[float, Field(ge=10, le=3600)] = 300.0
    signing_secret: str | None = None
    """Secret for signed download/upload URLs (≥ 24 characters); replicas must share it. Default: random
    per process."""
    url_import: UrlImportSettings = UrlImportSettings()


class OpenAPIFilterSettings(_Model):
    """Operations matching ANY of these: tags, path globs (``/users/*``), methods, operationId globs."""

    tags: list[str] = []
    paths: list[str] = []
    methods: list[str] = []
    operations: list[str] = []


class OpenAPIOperationSettings(_Model):
    """Per-operation overrides, keyed by operationId, tool operation name or ``"METHOD /path"``."""

    name: str | None = None
    description: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None


class OpenAPIPaginationSettings(_Model):
    max_pages: Annotated[int, Field(ge=1, le=100)] = 1
    """Pages followed per call (1: only the first page)."""
    cursor_field: str | None = None
    """Dotted path of the next-cursor field in a response, where detection cannot tell."""
    cursor_param: str | None = None
    """The query parameter the cursor goes into."""


class OpenAPIConnectorSettings(_ConnectorBase):
    kind: Literal["openapi"]
    spec: str
    """Path (relative to the config file) or http(s) URL of the OpenAPI / Swagger document."""
    spec_root: str | None = None
    """The folder (relative to the config file) whose files the document's ``$ref``s may read, when they
    reach above the document's own folder (Azure's ``../../../../../common-types/``); it holds ``spec``."""
    base_url: str | None = None
    """Overrides the document's servers."""
    description: str | None = None
    include: OpenAPIFilterSettings | None = None
    exclude: OpenAPIFilterSettings | None = None
    operations: dict[str, OpenAPIOperationSettings] = {}
    auth: dict[str, str] = {}
    """Security scheme name → secret reference (``env:NAME``); checked where it is resolved."""
    description_max_chars: Annotated[int, Field(ge=20, le=10_000)] = 300
    timeout: Annotated[float, Field(gt=0)] = 30.0
    pagination: OpenAPIPaginationSettings = OpenAPIPaginationSettings()
    max_spec_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    max_response_bytes: Annotated[int, Field(gt=0)] = 8 * 1024 * 1024
    idempotency_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")] = (
        "Idempotency-Key"
    )
    """The header a call's idempotency key is sent in when an operation declares none; 'none' when the
    upstream takes no keys (keyed writes are then not retried once a request may have reached it)."""
    cache: bool = True
    """Keep the ingested catalog of a local document in .toolbridge/cache/ (beside this file) for fast
    restarts; it is rebuilt whenever the document changes."""
    allow_hosts: list[str] = []
    """``host`` or ``host:port`` the hub may reach although not public (SSRF guard exceptions), e.g. a
    local test upstream that a next page, a redirect or a remote document's ``servers`` points to."""
    cross_origin: Literal["strip", "refuse"] = "strip"
    """A redirect or next page to another origin than the configured one is sent without credentials
    (``strip``) or not at all (``refuse``)."""


class GraphQLConnectorSettings(_ConnectorBase):
    """A GraphQL API: one tool per root query and mutation field (docs/graphql.md)."""

    kind: Literal["graphql"]
    endpoint: Annotated[str, Field(pattern=r"^https?://")]
    """The API's GraphQL URL, which every call is POSTed to."""
    schema_: str | None = Field(default=None, alias="schema")
    """SDL or introspection-result file, relative to the config file; omitted: introspection at start."""
    description: str | None = None
    include: list[str] = []
    """Tool names (without the connector prefix; globs) to keep; empty: every root field."""
    exclude: list[str] = []
    selection_depth: Annotated[int, Field(ge=1, le=5)] = 2
    """Levels of nested object fields in a tool's default selection."""
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_schema_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    max_response_bytes: Annotated[int, Field(gt=0)] = 8 * 1024 * 1024
    idempotency_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")] = "none"
    """The header a mutation's idempotency key is sent in, for an API that honours one; 'none' (the
    default): keys are not sent, and a keyed mutation is not retried once it may have reached the API."""
    allow_hosts: list[str] = []
    """``host`` or ``host:port`` that introspection may reach although not public (SSRF guard exceptions)."""
    cross_origin: Literal["strip", "refuse"] = "strip"


class McpConnectorSettings(_ConnectorBase):
    """An upstream MCP server: ``command`` (stdio) or ``url`` (streamable HTTP), exactly one."""

    kind: Literal["mcp"]
    description: str | None = None
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    """Environment of the stdio server; values may be secret references (``env:NAME``)."""
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    """HTTP headers sent upstream; values may be secret references (``env:NAME``)."""
    protocol: Literal["auto", "2025-11-25", "2026-07-28"] = "auto"
    transport: Literal["auto", "streamable-http", "sse"] = "auto"
    """For ``url``: ``auto`` tries streamable HTTP, then the legacy HTTP+SSE transport (2024-11-05)."""
    proxy: str | None = None
    """For ``url``: an HTTP proxy to reach the server through (``http://host:port``); the environment's
    ``HTTP_PROXY`` is never used."""
    ca_file: str | None = None
    """For ``url``: a PEM file of the CA certificates that verify the server (a private CA)."""
    client_cert: str | None = None
    """For ``url``: a PEM file with the client certificate for mutual TLS (and its key, or ``client_key``)."""
    client_key: str | None = None
    fast_path: bool | None = None
    """For ``url``: ``true`` toolbridge's own small HTTP/1.1 client, ``false`` httpx2's (httpcore); unset:
    the fast path unless a ``proxy`` is given (it cannot go through one)."""
    start_timeout: float = pydantic.Field(default=60.0, gt=0)
    """For ``command``: seconds the process may take to answer at all (npx/uvx install on a first run)."""
    approve: Literal["manual", "all-on-first-connect"] = "manual"
    """Who approves tool definitions: a person (``toolbridge tools approve``), or the first connection."""
    prefix: bool = True
    """False: MCP clients see the upstream's own tool and prompt names and resource URIs (the catalog,
    scopes, REST and the audit keep ``connector.tool``); a name another tool has is an error."""
    read_only: list[str] = []
    """Upstream tool names (patterns) toolbridge treats as read-only; upstream hints can only restrict."""
    destructive: list[str] = []
    idempotent: list[str] = []
    hide: list[str] = []

    @pydantic.field_validator("protocol", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """YAML reads an unquoted ``2026-07-28`` as a date; the version is meant."""
        return value.isoformat() if isinstance(value, dt.date) else value

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> McpConnectorSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (a stdio server) or 'url' (streamable HTTP)")
        if self.transport != "auto" and self.url is None:
            raise ValueError("'transport' applies to a 'url' server; a 'command' server speaks stdio")
        http_only = ("proxy", "ca_file", "client_cert", "client_key")
        given = [f for f in http_only if getattr(self, f) is not None]
        given += ["fast_path"] if self.fast_path is not None else []
        if given and self.url is None:
            raise ValueError(f"{', '.join(given)}: for a 'url' server; a 'command' server speaks stdio")
        if self.fast_path and self.proxy is not None:
            raise ValueError("'fast_path' speaks to the server directly: drop it or the 'proxy'")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("'client_key' needs 'client_cert' (the certificate's PEM file)")
        if self.transport == "sse" and self.protocol == "2026-07-28":
            raise ValueError("the legacy 'sse' transport has no 2026-07-28 era: use protocol 2025-11-25")
        return self


ConnectorSettings = Annotated[
    PythonConnectorSettings
    | WorkspaceConnectorSettings
    | OpenAPIConnectorSettings
    | GraphQLConnectorSettings
    | McpConnectorSettings,
    Field(discriminator="kind"),
]


class AgentSettings(_Model):
    scopes: list[str]
    rate: str | None = None
    """Inbound limit for this agent, such as '600/minute' (429 with Retry-After past it)."""
    _rate_ok = pydantic.field_validator("rate")(lambda v: _valid_rate(v))
    description: str | None = None
    tool_mode: Literal["full", "search"] = "full"
    """``search``: MCP clients of this agent see three meta-tools (search, describe, call) instead of
    every tool's schema — for large catalogs."""


class OutboxSettings(_Model):
    """How queued writes are retried (docs/resilience.md, "Queue for later")."""

    base_delay: Annotated[float, Field(ge=0)] = 5.0
    """First backoff ceiling in seconds; doubles per attempt (full jitter)."""
    max_delay: Annotated[float, Field(ge=0)] = 3600.0
    max_attempts: Annotated[int, Field(ge=1)] = 10
    lease: Annotated[float, Field(gt=0)] = 120.0
    """Seconds a worker holds an item it claimed (renewed every third of it while it works)."""


class SearchSettings(_Model):
    """Tool search (``toolbridge.search_tools``, ``GET /v1/tools?q=``, ``toolbridge tools search``)."""

    semantic: bool = True
    """Fuse BM25F with sentence embeddings when ``toolbridge[semantic]`` is installed (false: BM25F alone)."""
    cache: bool = True
    """Keep tool embeddings in ``.toolbridge/cache/embeddings.npz`` beside the file, so a restart embeds
    only changed tools."""


class Settings(_Model):
    """Everything in a toolbridge.yaml, plus where it was read from."""

    version: Literal[1] = 1
    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    connectors: dict[str, ConnectorSettings] = {}
    agents: dict[str, AgentSettings] = {}
    credentials: CredentialsSettings = CredentialsSettings()
    providers: dict[str, dict[str, Any]] = {}
    """OAuth provider definitions added to the built-in ones (validated by their JSON Schema)."""
    hooks: dict[str, HookSettings] = {}
    """Inbound webhook sources, received at ``POST /hooks/<name>`` (docs/events.md)."""
    events: EventSettings = EventSettings()
    subscriptions: dict[str, SubscriptionSettings] = {}
    triggers: dict[str, TriggerSettings] = {}
    """Poll triggers: read-only tools called on a schedule; new or changed items become events."""
    outbox: OutboxSettings = OutboxSettings()
    capabilities: dict[str, CapabilitySettings] = {}
    """Router: operations agents call by name, each served by the first of its providers that can."""
    pipelines: dict[str, PipelineSettings] = {}
    """Durable multi-step workflows, each one tool ``pipelines.<name>`` (docs/patterns.md)."""
    pipeline_worker: PipelineWorkerSettings = PipelineWorkerSettings()
    search: SearchSettings = SearchSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    source: Path | None = Field(default=None, exclude=True)
    text: str | None = Field(default=None, exclude=True, repr=False)
    """The file's text, to locate mistakes found after parsing (:func:`located_error`)."""

    @pydantic.field_validator(
        "server",
        "limits",
        "connectors",
        "agents",
        "hooks",
        "events",
        "subscriptions",
        "triggers",
        "capabilities",
        "pipelines",
        mode="before",
    )
    @classmethod
    def _empty_section(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        """A section with only comments under it (YAML null) means its defaults."""
        if value is None:
            return {}
        return value

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()


def load_settings(path: str | Path) -> Settings:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(
            "the file does not exist", path=str(path), hint="create one with 'toolbridge init'"
        ) from None
    except IsADirectoryError:
        inside = path / "toolbridge.yaml"
        found = [inside] if inside.is_file() else sorted(path.glob("*.y*ml"))[:3]
        raise ConfigFileError(
            "this is a folder, not a configuration file",
            path=str(path),
            hint=f"pass the file itself: --config {' or '.join(str(f) for f in found)}"
            if found
            else "pass the toolbridge.yaml file itself with --config (or write one with 'toolbridge init')",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read the file: {exc}", path=str(path)) from exc
    return parse_settings(text, source=path)


def parse_settings(text: str, *, source: Path | None = None) -> Settings:
    name = str(source) if source else "<toolbridge.yaml>"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(
            f"not valid YAML: {problem}", path=name, line=line, hint=yaml_hint(text, name, problem)
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            "the top level must be a mapping of sections",
            path=name,
            line=1,
            hint="start with keys such as 'server:', 'connectors:' and 'agents:'",
        )
    try:
        settings = Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        raise config_error(exc, node, name, Settings) from None
    return settings.model_copy(update={"source": source.resolve() if source else None, "text": text})


def located_error(
    settings: Settings, loc: Sequence[str | int], message: str, hint: str | None = None
) -> ConfigFileError:
    """A mistake found after parsing (a capability naming an unknown tool), reported like a parse error:
    the file, the line of the deepest key of ``loc`` that is in it, and the dotted key."""
    name = str(settings.source) if settings.source else "<toolbridge.yaml>"
    root = None
    if settings.text is not None:
        try:
            root = yaml.compose(settings.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            root = None
    key = ".".join(str(p) for p in loc) or None
    return ConfigFileError(message, path=name, line=line_of(root, list(loc)), key=key, hint=hint)
