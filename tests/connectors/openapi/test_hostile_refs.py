"""A hostile document cannot make the hub read local files or internal URLs through ``$ref``.

A real HTTP server on 127.0.0.1 serves the document (its host is allowed by the operator, as a test
server must be); the document refers to a local file, an internal address, the cloud metadata address, a
host name that resolves to loopback (the resolver is injected) and a redirect to the metadata address.
Each is refused before any byte is requested, reported with the reason, and its content never reaches a
tool schema. A recording transport around the real one shows which URLs were requested.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx2
import pytest
from typer.testing import CliRunner

from tests._patience import patience
from toolbridge import ConfigurationError
from toolbridge.cli import app
from toolbridge.connectors.openapi import IngestReport, OpenAPIConnector, ingest, load_spec
from toolbridge.settings import OpenAPIConnectorSettings, parse_settings

SECRET = "TOPSECRET-canary-5be1"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/doc.yaml")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder served over HTTP on 127.0.0.1, and the port."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join(timeout=patience(10))
        server.server_close()


class Recording(httpx2.BaseTransport):
    """The real transport, with every requested URL noted."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self._real = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.urls.append(f"{request.url} Host={request.headers.get('host')}")
        return self._real.handle_request(request)


def loopback_resolver(host: str, port: int) -> Sequence[str]:
    assert host == "docs.evil.test"  # only names are resolved; numeric hosts are read, never looked up
    return ["127.0.0.1"]


def _document(refs: dict[str, str]) -> str:
    paths = {
        f"/{name}": {
            "get": {
                "operationId": name,
                "parameters": [{"name": "q", "in": "query", "schema": {"$ref": ref}}],
                "responses": {"200": {"description": "ok"}},
            }
        }
        for name, ref in refs.items()
    }
    return json.dumps({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths})


def _secret_file(folder: Path) -> Path:
    path = folder / "secret.yaml"
    path.write_text(f"s: {{type: string, description: {SECRET}, enum: [{SECRET}]}}\n")
    return path


def _reasons(report: IngestReport) -> dict[str, str]:
    return {issue.operation.removeprefix("api."): issue.reason for issue in report.issues}


def test_a_remote_document_cannot_reach_files_internal_addresses_or_loopback_names(
    served: tuple[Path, int], tmp_path: Path
) -> None:
    folder, port = served
    outside = _secret_file(tmp_path)
    _secret_file(folder)
    (folder / "parts.yaml").write_text("s: {type: integer, minimum: 3}\n")
    refs = {
        "same_host": "parts.yaml#/s",
        "local_file": f"{outside.as_uri()}#/s",
        "internal": "http://10.0.0.1/secret.yaml#/s",
        "metadata": "http://169.254.169.254/latest/meta-data/secret.yaml#/s",
        "loopback_name": f"http://docs.evil.test:{port}/secret.yaml#/s",
        "redirect": f"http://127.0.0.1:{port}/redirect#/s",
    }
    (folder / "api.json").write_text(_document(refs))
    transport = Recording()
    source = load_spec(
        f"http://127.0.0.1:{port}/api.json",
        allow_hosts=[f"127.0.0.1:{port}"],
        resolver=loopback_resolver,
        transport=transport,
    )
    result = ingest(source, "api")
    assert SECRET not in json.dumps([tool.input_schema for tool in result.tools])
    same = next(t for t in result.tools if t.name == "api.same_host")
    assert same.input_schema["properties"]["q"] == {"type": "integer", "minimum": 3}
    reasons = _reasons(result.report)
    assert set(reasons) == set(refs) - {"same_host"}
    assert all(i.kind == "degraded" for i in result.report.issues)
    assert "cannot refer to local files" in reasons["local_file"]
    for name in ("internal", "metadata", "loopback_name", "redirect"):
        assert "refused by the SSRF guard" in reasons[name] and "allow_hosts" not in reasons[name]
    requested = [u.split(" ")[0].split(f":{port}")[-1] for u in transport.urls]
    assert sorted(requested) == ["/api.json", "/parts.yaml", "/redirect"], transport.urls


def test_a_remote_spec_url_is_guarded_until_the_operator_allows_its_host(served: tuple[Path, int]) -> None:
    folder, port = served
    (folder / "api.json").write_text(_document({}))
    with pytest.raises(ConfigurationError, match="refused by the SSRF guard") as caught:
        load_spec(f"http://127.0.0.1:{port}/api.json")
    assert "allow_hosts" in (caught.value.hint or "")
    assert load_spec(f"http://127.0.0.1:{port}/api.json", allow_hosts=["127.0.0.1"]).root["paths"] == {}


def test_a_local_document_reads_files_only_inside_its_own_folder(tmp_path: Path) -> None:
    root = tmp_path / "api"
    (root / "models").mkdir(parents=True)
    (root / "models" / "ok.yaml").write_text("s: {type: boolean}\n")
    outside = _secret_file(tmp_path)
    (root / "link.yaml").symlink_to(outside)
    refs = {
        "inside": "models/ok.yaml#/s",
        "parent": "../secret.yaml#/s",
        "absolute": f"{outside.as_uri()}#/s",
        "symlink": "link.yaml#/s",
        "loopback": "http://127.0.0.1:9/secret.yaml#/s",
    }
    (root / "openapi.json").write_text(_document(refs))
    result = ingest(load_spec(root / "openapi.json"), "api")
    assert SECRET not in json.dumps([tool.input_schema for tool in result.tools])
    inside = next(t for t in result.tools if t.name == "api.inside")
    assert inside.input_schema["properties"]["q"] == {"type": "boolean"}
    reasons = _reasons(result.report)
    assert set(reasons) == set(refs) - {"inside"}
    for name in ("parent", "absolute", "symlink"):
        assert f"refused: outside {root}, the folder of the root document" in reasons[name]
    assert "refused by the SSRF guard" in reasons["loopback"]


def test_the_connectors_allow_hosts_covers_its_document(served: tuple[Path, int]) -> None:
    folder, port = served
    (folder / "api.json").write_text(_document({"ok": "parts.yaml#/s"}))
    (folder / "parts.yaml").write_text("s: {type: string}\n")
    url = f"http://127.0.0.1:{port}/api.json"
    with pytest.raises(ConfigurationError, match="refused by the SSRF guard"):
        OpenAPIConnector.from_spec("api", url)
    connector = OpenAPIConnector.from_spec("api", url, allow_hosts=[f"127.0.0.1:{port}"])
    assert connector.report.tools == 1 and not connector.report.issues


def test_add_openapi_takes_the_hosts_the_operator_allows(served: tuple[Path, int], tmp_path: Path) -> None:
    folder, port = served
    (folder / "api.json").write_text(_document({"ok": "parts.yaml#/s"}))
    (folder / "parts.yaml").write_text("s: {type: string}\n")
    config = tmp_path / "toolbridge.yaml"
    url = f"http://127.0.0.1:{port}/api.json"
    runner = CliRunner()
    refused = runner.invoke(app, ["add", "openapi", "mine", url, "-c", str(config)])
    assert refused.exit_code == 1 and "refused by the SSRF guard" in refused.output
    assert "--allow-host" in refused.output and not config.exists()
    added = runner.invoke(
        app, ["add", "openapi", "mine", url, "-c", str(config), "--allow-host", f"127.0.0.1:{port}"]
    )
    assert added.exit_code == 0, added.output
    connector = parse_settings(config.read_text()).connectors["mine"]
    assert isinstance(connector, OpenAPIConnectorSettings) and connector.allow_hosts == [f"127.0.0.1:{port}"]


def _azure_layout(tmp_path: Path) -> Path:
    """Azure's layout (specification/<service>/resource-manager/<provider>/stable/<version>/<name>.json),
    whose parameters and schemas are ``$ref``s to ``../../../../../common-types/…``: the document itself
    also refers to a file above the specification folder."""
    common = tmp_path / "specification" / "common-types" / "resource-management" / "v5"
    common.mkdir(parents=True)
    (common / "types.json").write_text(
        json.dumps(
            {
                "parameters": {
                    "Sub": {"name": "subscriptionId", "in": "path", "required": True, "type": "string"},
                    "Version": {"name": "api-version", "in": "query", "required": True, "type": "string"},
                },
                "definitions": {
                    "Tracked": {"type": "object", "required": ["location"], "properties": {"location": {}}}
                },
            }
        )
    )
    _secret_file(tmp_path)
    folder = (
        tmp_path / "specification" / "app" / "resource-manager" / "Microsoft.App" / "stable" / "2023-01-01"
    )
    folder.mkdir(parents=True)
    types = "../../../../../common-types/resource-management/v5/types.json"
    widget = {
        "allOf": [{"$ref": f"{types}#/definitions/Tracked"}],
        "properties": {"size": {"type": "integer"}},
    }
    operation = {
        "operationId": "Widgets_Create",
        "parameters": [
            {"$ref": f"{types}#/parameters/Sub"},
            {"$ref": f"{types}#/parameters/Version"},
            {"name": "widget", "in": "body", "required": True, "schema": widget},
        ],
        "responses": {"200": {"description": "ok"}},
    }
    peek = {
        "operationId": "peek",
        "parameters": [{"name": "q", "in": "body", "schema": {"$ref": "../../../../../../secret.yaml#/s"}}],
        "responses": {"200": {"description": "ok"}},
    }
    paths = {"/subscriptions/{subscriptionId}/widgets": {"put": operation}, "/peek": {"post": peek}}
    document = {"swagger": "2.0", "info": {"title": "App", "version": "2023-01-01"}, "paths": paths}
    (folder / "app.json").write_text(json.dumps(document))
    return folder / "app.json"


def test_spec_root_reaches_shared_files_above_the_document_and_no_further(tmp_path: Path) -> None:
    """Every operation of an Azure document was skipped: its shared parameters are outside the
    document's folder, and nothing let the operator name a wider one. Found by an outside probe."""
    spec = _azure_layout(tmp_path)
    fenced = OpenAPIConnector.from_spec("api", spec)
    assert [tool.name for tool in fenced.tools()] == ["api.peek"]
    assert "set the connector's spec_root" in _reasons(fenced.report)["Widgets_Create"]

    connector = OpenAPIConnector.from_spec("api", spec, spec_root=tmp_path / "specification")
    schema = next(t for t in connector.tools() if t.name == "api.widgets_create").input_schema
    assert {"subscriptionId", "api-version", "location"} <= set(schema["required"])
    assert schema["properties"]["size"] == {"type": "integer"}
    peek = _reasons(connector.report)["peek"]  # a file above spec_root stays out of reach
    assert f"refused: outside {tmp_path / 'specification'}, spec_root" in peek
    assert SECRET not in json.dumps([tool.input_schema for tool in connector.tools()])

    with pytest.raises(ConfigurationError, match="not inside spec_root"):
        OpenAPIConnector.from_spec("api", spec, spec_root=tmp_path / "specification" / "common-types")


def test_spec_root_in_the_configuration_is_relative_to_it(tmp_path: Path) -> None:
    spec = _azure_layout(tmp_path)
    config = tmp_path / "toolbridge.yaml"
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "add",
            "openapi",
            "az",
            str(spec),
            "--spec-root",
            str(tmp_path / "specification"),
            "-c",
            str(config),
        ],
    )
    assert added.exit_code == 0, added.output
    connector = parse_settings(config.read_text()).connectors["az"]
    assert isinstance(connector, OpenAPIConnectorSettings) and connector.spec_root == "specification"
    listed = runner.invoke(app, ["tools", "list", "az", "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "az.widgets_create" in listed.output and "0 skipped, 1 degraded" in listed.output
