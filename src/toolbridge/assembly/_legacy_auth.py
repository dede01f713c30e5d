"""An OpenAPI connector's deprecated ``auth:`` block → the equivalent ``connections:`` block.

``auth: {scheme: env:NAME}`` named a secret per security scheme of the document and the connector put
each on requests itself. Connections do that job now (one path for every connector: the credentials
layer resolves a connection, the connector sends its ``httpx2.Auth``), so an ``auth:`` block is read as
the connection it amounts to — a shared connection whose ``secret:`` is the same reference — and a
warning names the file, the line and the YAML to write instead.

| document scheme | connection |
|---|---|
| ``apiKey`` (header, query, cookie) | ``api_key`` with its name and location |
| ``http`` ``basic`` | ``basic`` (``user:password``); already base64-encoded (no ``:``): ``header`` |
| ``http`` ``bearer``, ``oauth2``, ``openIdConnect`` | ``bearer`` |
| ``http`` other (``digest`` …) | ``header`` with ``Authorization: <Scheme> {secret}`` |

Several schemes become one ``header`` connection with a template per scheme (and the secret's fields
from the same references); schemes that cannot all travel as headers are refused with the fix.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import pydantic
import yaml

from toolbridge.connectors.openapi._model import SecurityScheme
from toolbridge.errors import ConfigurationError
from toolbridge.settings import (
    ConnectionSettings,
    OpenAPIConnectorSettings,
    Settings,
    located_error,
)

__all__ = ["connection_fields", "legacy_connection"]

logger = logging.getLogger("toolbridge.connectors.openapi")
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_HOW = "see docs/openapi.md#credentials-from-connections"


def legacy_connection(
    name: str,
    config: OpenAPIConnectorSettings,
    schemes: Mapping[str, SecurityScheme],
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings | None:
    """The connection ``config.auth`` amounts to (None when there is nothing to translate), after a
    deprecation warning naming where the block is and what to write instead.

    Raises a :class:`ConfigurationError` (located in the file) when the block cannot be translated."""
    if not config.auth:
        return None
    where = _where(settings, name)
    for scheme, ref in config.auth.items():
        if _ENV_REF.match(ref) is None:
            raise _located(settings, name, scheme, "not a secret reference", "write 'env:VARIABLE'")
    if config.connections is not None:
        logger.warning(
            "%s: connectors.%s.auth is deprecated and ignored: 'connections:' is configured and a call "
            "always used the connection; remove the 'auth:' block (%s)",
            where,
            name,
            _HOW,
        )
        return None
    try:
        fields = connection_fields(config.auth, schemes, os.environ if environ is None else environ)
    except ConfigurationError as exc:
        raise located_error(settings, ["connectors", name, "auth"], exc.message, exc.hint) from None
    connection = pydantic.TypeAdapter(ConnectionSettings).validate_python(fields)
    replacement = yaml.safe_dump({"connections": fields}, default_flow_style=False, sort_keys=False)
    logger.warning(
        "%s: connectors.%s.auth is deprecated: it is read as the connection below; replace the 'auth:' "
        "block with it (%s):\n%s",
        where,
        name,
        _HOW,
        "\n".join("    " + line for line in replacement.splitlines()),
    )
    return connection


def connection_fields(
    refs: Mapping[str, str], schemes: Mapping[str, SecurityScheme], env: Mapping[str, str]
) -> dict[str, Any]:
    """The ``connections:`` block (as YAML data) that sends the secrets of ``refs`` (security scheme name
    → ``env:NAME``) the way the document's ``schemes`` say; ``toolbridge add openapi --auth`` writes it."""
    unknown = sorted(set(refs) - set(schemes))
    if unknown:
        raise ConfigurationError(
            f"no security scheme named {', '.join(map(repr, unknown))} in the document",
            hint="the document declares: " + (", ".join(sorted(schemes)) or "no security schemes"),
        )
    used = {n: (schemes[n], ref) for n, ref in refs.items()}
    if len(used) == 1:
        ((scheme, ref),) = used.values()
        if scheme.type == "apiKey" and scheme.param:
            return {"scheme": "api_key", "name": scheme.param, "location": scheme.location, "secret": ref}
        if scheme.type == "http" and scheme.scheme == "basic" and not _encoded(ref, env):
            return {"scheme": "basic", "secret": ref}
    templates: dict[str, str] = {}
    for scheme_name, (scheme, _) in sorted(used.items()):
        header, template = _header(scheme, scheme_name, env, used)
        if header is None or (header in templates and header != "Cookie"):
            raise ConfigurationError(
                f"security scheme {scheme_name!r} ({scheme.describe()}) "
                + (
                    "cannot share one connection with the other schemes of 'auth:'"
                    if len(used) > 1
                    else "takes no secret toolbridge can send"
                ),
                hint="write one 'connections:' block for the scheme the operations need (" + _HOW + ")",
            )
        templates[header] = f"{templates[header]}; {template}" if header in templates else template
    if len(used) == 1 and "Authorization" in templates and templates["Authorization"].startswith("Bearer "):
        (ref,) = (r for _, r in used.values())
        return {"scheme": "bearer", "secret": ref}
    if len(used) == 1:
        (ref,) = (r for _, r in used.values())
        return {"scheme": "header", "templates": _single(templates), "secret": ref}
    return {
        "scheme": "header",
        "templates": templates,
        "secret": {n: r for n, (_, r) in sorted(used.items())},
    }


def _header(
    scheme: SecurityScheme, field: str, env: Mapping[str, str], used: Mapping[str, tuple[SecurityScheme, str]]
) -> tuple[str | None, str]:
    """The header a scheme's secret travels in and its template (None: it cannot be a header)."""
    if scheme.type == "apiKey" and scheme.param:
        if scheme.location == "header":
            return scheme.param, f"{{{field}}}"
        if scheme.location == "cookie":
            return "Cookie", f"{scheme.param}={{{field}}}"
        return None, ""
    if scheme.type == "http" and scheme.scheme == "basic":
        return ("Authorization", f"Basic {{{field}}}") if _encoded(used[field][1], env) else (None, "")
    if scheme.type == "http" and scheme.scheme not in (None, "bearer"):
        return "Authorization", f"{scheme.scheme.capitalize()} {{{field}}}"
    if scheme.type in ("http", "oauth2", "openIdConnect"):
        return "Authorization", f"Bearer {{{field}}}"
    return None, ""


def _single(templates: Mapping[str, str]) -> dict[str, str]:
    """One scheme's templates name its secret ``{secret}`` (the whole secret of a header connection)."""
    return {h: re.sub(r"\{[^{}]+\}", "{secret}", t) for h, t in templates.items()}


def _encoded(ref: str, env: Mapping[str, str]) -> bool:
    """A basic secret already base64-encoded (set, without the ``:`` of ``user:password``): it was sent
    as it is."""
    match = _ENV_REF.match(ref)
    value = env.get(match.group(1), "") if match else ""
    return bool(value) and ":" not in value


def _where(settings: Settings, name: str) -> str:
    located = located_error(settings, ["connectors", name, "auth"], "")
    return f"{located.path}:{located.line}" if located.line is not None else located.path


def _located(settings: Settings, name: str, scheme: str, message: str, hint: str) -> ConfigurationError:
    return located_error(settings, ["connectors", name, "auth", scheme], message, hint)
