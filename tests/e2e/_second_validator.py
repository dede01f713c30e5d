"""A second, independent judge of the requests toolbridge sends: openapi-core (OpenAPI 3.0 / 3.1).

Each request recorded on its way to prism is replayed, as data, into openapi-core's request validator:
the document's own server URL stands in for prism's, so openapi-core routes it to the operation itself.
openapi-core does not read Swagger 2.0; :func:`validator_for` returns None for such documents.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from urllib.request import url2pathname

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from openapi_schema_validator import OAS30Validator, OAS31Validator

from tests._patience import patience
from toolbridge.connectors.openapi import SpecSource

__all__ = ["Recorded", "SecondValidator", "validator_for"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as sent: what a validator needs, and the server URL of its operation."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    server: str


class SecondValidator:
    def __init__(self, document: Mapping[str, Any], uri: str, formats: set[str]) -> None:
        # Real documents are often not strictly valid: the document itself is not judged. Formats JSON
        # Schema does not define (Twilio's ``phone-number``) are annotations, not assertions — openapi-core
        # raises on them instead (its issue #515), so they are declared as accepting any value.
        unknown = {name: _any for name in formats - _KNOWN_FORMATS}
        config = Config(spec_validator_cls=None, extra_format_validators=unknown)
        self._app = OpenAPI.from_dict(dict(document), config=config, base_uri=uri)

    def problems(self, recorded: Recorded) -> list[str]:
        """What openapi-core finds wrong with the request (empty: accepted)."""
        with warnings.catch_warnings():  # a parameter marked `deprecated` (GitHub's `order`) is still valid
            warnings.filterwarnings("ignore", r".* parameter is deprecated", DeprecationWarning)
            result = self._app.unmarshal_request(_mock(recorded))
        return [_describe(error) for error in result.errors]


def validator_for(source: SpecSource, node: str) -> SecondValidator | None:
    """None for Swagger 2.0. A document of several files is first bundled into one by prism's own
    reference parser (openapi-core cannot read ``properties: {$ref: …}``, a layout real APIs use)."""
    if "swagger" in source.root:
        return None
    formats = {f for document in source.documents.values() for f in _formats(document)}
    if len(source.documents) == 1:
        return SecondValidator(source.root, source.uri, formats)
    return SecondValidator(_bundled(node, source.uri), source.uri, formats)


_KNOWN_FORMATS = set(OAS30Validator.FORMAT_CHECKER.checkers) | set(OAS31Validator.FORMAT_CHECKER.checkers)


def _any(value: Any) -> bool:
    return True


def _formats(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("format"), str):
                yield item["format"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _bundled(node: str, uri: str) -> Any:
    path = url2pathname(urlsplit(uri).path)
    finished = subprocess.run(
        [node, "-e", _BUNDLE, path], cwd=NODE_TOOLS, capture_output=True, check=True, timeout=patience(120)
    )
    return json.loads(finished.stdout)


NODE_TOOLS = Path(__file__).parents[1] / "node"
_BUNDLE = """
require("@stoplight/json-schema-ref-parser").bundle(process.argv[1])
  .then((doc) => process.stdout.write(JSON.stringify(doc)))
  .catch((error) => { console.error(error); process.exit(1); });
"""


def _mock(recorded: Recorded) -> MockRequest:
    parts = urlsplit(recorded.url)
    headers = {k: v for k, v in recorded.headers if k.lower() != "cookie"}
    cookie = SimpleCookie()
    for key, value in recorded.headers:
        if key.lower() == "cookie":
            cookie.load(value)
    query: Any = parse_qsl(parts.query, keep_blank_values=True)  # werkzeug takes a list of pairs
    server = urlsplit(recorded.server)
    return MockRequest(
        f"{server.scheme}://{server.netloc}",
        recorded.method,
        server.path.rstrip("/") + parts.path,
        args=query,
        headers=headers,
        cookies={k: m.value for k, m in cookie.items()},
        data=recorded.body,
        content_type=headers.get("content-type", headers.get("Content-Type", "")),
    )


def _describe(error: Exception) -> str:
    causes = [str(c) for c in getattr(error, "schema_errors", ())][:2]
    inner = error.__cause__
    text = f"{type(error).__name__}: {error}"
    if inner is not None:
        text += f" ({type(inner).__name__}: {inner})"
    return (text + ("; " + "; ".join(causes) if causes else ""))[:300]
