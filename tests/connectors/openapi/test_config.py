"""toolbridge.yaml for OpenAPI connectors: located mistakes, secret references, and the CLI commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests._specs import OWN
from toolbridge import ConfigFileError, Hub
from toolbridge.cli import app
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.settings import OpenAPIConnectorSettings, parse_settings

INCIDENTS = OWN / "incidents.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "connectors:\n  gh:\n    kind: openapi\n    spec: x.yaml\n    base_ur: http://x\n",
            "<toolbridge.yaml>:5: connectors.gh.base_ur: unknown key (did you mean 'base_url'?",
        ),
        (
            "connectors:\n  gh:\n    kind: openapi\n    spec: x.yaml\n    include:\n      tag: [a]\n",
            "<toolbridge.yaml>:6: connectors.gh.include.tag: unknown key (did you mean 'tags'?",
        ),
        (
            "connectors:\n  gh:\n    kind: openapi\n",
            "<toolbridge.yaml>:2: connectors.gh.spec: this key is required but missing",
        ),
    ],
)
def test_mistakes_are_located(text: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_settings(text)
    assert str(info.value).startswith(expected)


def test_settings_build_a_filtered_connector_with_overrides(tmp_path: Path) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n"
        "connectors:\n"
        "  pd:\n"
        "    kind: openapi\n"
        f"    spec: {INCIDENTS}\n"
        "    base_url: http://127.0.0.1:9\n"
        "    include: {tags: [Incidents]}\n"
        "    exclude: {methods: [DELETE]}\n"
        "    operations:\n"
        "      listIncidents: {name: incidents, description: All incidents}\n"
        "      createIncident: {destructive: true}\n"
    )
    hub = Hub.from_settings(parse_settings(config.read_text(), source=config))
    connector = hub.connector("pd")
    assert isinstance(connector, OpenAPIConnector)
    incidents = hub.catalog.get("pd.incidents")
    assert incidents.description == "All incidents" and incidents.annotations.read_only
    assert hub.catalog.get("pd.create_incident").annotations.destructive
    assert all(t.name.startswith("pd.") for t in hub.catalog)
    assert sorted(t.name for t in hub.catalog) == [
        "pd.create_incident",
        "pd.get_incident",
        "pd.get_outlier_incident_beta",
        "pd.incidents",
        "pd.list_incident_notes",
    ]
    assert connector.report.tools == 5 and len(connector.report.excluded) == 7


def _legacy(auth: dict[str, str]) -> OpenAPIConnector:
    from toolbridge.assembly._openapi import openapi_connector
    from toolbridge.settings import Settings

    settings = OpenAPIConnectorSettings(kind="openapi", spec=str(INCIDENTS), auth=auth, cache=False)
    return openapi_connector("pd", settings, Settings(), environ={"X": "v"})


def test_auth_holding_a_secret_instead_of_a_reference_is_refused_without_echoing_it() -> None:
    connector = _legacy({"api_key": "ghp_actual_secret"})
    assert not connector.tools()
    error = connector.report.error or ""
    assert "connectors.pd.auth.api_key: not a secret reference" in error
    assert "ghp_actual_secret" not in error


def test_auth_naming_an_unknown_scheme_is_reported() -> None:
    connector = _legacy({"apikey": "env:X"})
    assert not connector.tools()
    assert "no security scheme named 'apikey'" in (connector.report.error or "")
    assert "the document declares: api_key" in (connector.report.error or "")


@pytest.fixture
def run(in_tmp_dir: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def test_cli_adds_a_connector_keeping_the_file_as_it_was(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    config = in_tmp_dir / "toolbridge.yaml"
    config.write_text(
        "# my config\nserver:\n  database: 'sqlite+aiosqlite:///:memory:'\n"
        "connectors:\n  # the notes\n  notes:\n    kind: python\n    tools: []\n\nagents: {}\n"
    )
    code, out = run("add", "openapi", "pd", str(INCIDENTS), "--base-url", "http://127.0.0.1:9")
    assert code == 0, out
    assert "12 tools" in out and "--auth api_key=env:VARIABLE" in out
    text = config.read_text()
    assert text.startswith("# my config\n") and "  # the notes\n" in text and text.endswith("agents: {}\n")
    settings = parse_settings(text)
    assert list(settings.connectors) == ["notes", "pd"]
    assert settings.connectors["pd"].model_dump(include={"kind", "spec", "base_url"}) == {
        "kind": "openapi",
        "spec": str(INCIDENTS),
        "base_url": "http://127.0.0.1:9",
    }
    code, out = run("add", "openapi", "pd", str(INCIDENTS))
    assert code == 1 and "already in the file" in out
    code, out = run("add", "openapi", "pd2", str(INCIDENTS), "--auth", "api_key=env:PD_TOKEN")
    assert code == 0, out
    connector = parse_settings(config.read_text()).connectors["pd2"]
    assert connector.connections is not None and "auth" not in connector.model_fields_set
    assert connector.connections.model_dump(include={"scheme", "name", "location", "secret"}) == {
        "scheme": "api_key",
        "name": "Authorization",
        "location": "header",
        "secret": "env:PD_TOKEN",
    }


def test_cli_creates_the_file_and_lists_a_connector_with_its_report(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec = in_tmp_dir / "api.yaml"
    spec.write_text(
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nservers: [{url: 'http://127.0.0.1:9'}]\npaths:\n"
        "  /ok: {get: {operationId: ok, responses: {'200': {description: ok}}}}\n"
        "  /bad: {get: {operationId: bad, parameters: [{$ref: '#/nope'}],\n"
        "               responses: {'200': {description: ok}}}}\n"
    )
    code, out = run("add", "openapi", "mine", "api.yaml")
    assert code == 0, out
    assert "spec: api.yaml" in (in_tmp_dir / "toolbridge.yaml").read_text()
    (in_tmp_dir / "toolbridge.yaml").write_text(
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n" + (in_tmp_dir / "toolbridge.yaml").read_text()
    )
    code, out = run("tools", "list", "mine")
    assert code == 0, out
    assert "mine.ok" in out and "1 skipped" in out
    assert "/paths/~1bad/get/parameters/0" in out and "unresolvable $ref '#/nope'" in out
    code, out = run("tools", "list", "min")
    assert code == 1 and "did you mean 'mine'?" in out
    code, out = run("add", "openapi", "Bad Name", "api.yaml")
    assert code == 1 and "not a valid connector name" in out
