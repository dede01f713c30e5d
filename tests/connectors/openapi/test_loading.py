"""Loading documents: files and URLs, JSON and YAML, several files; and every bad input named clearly."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._patience import patience
from tests._specs import vendor_spec, vendor_specs
from toolbridge import ConfigurationError, Hub, Principal
from toolbridge.connectors.openapi import OpenAPIConnector, ingest, load_spec
from toolbridge.settings import parse_settings

MULTIFILE = "multifile/oai-petstore-separate-v2"


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving ``big.yaml`` (2 MB) and the vendors' documents, if here."""
    folder = tmp_path_factory.mktemp("served")
    lines = "".join(
        f"  /items/{i}: {{get: {{operationId: item{i}, responses: {{}}}}}}\n" for i in range(40_000)
    )
    (folder / "big.yaml").write_text("openapi: 3.0.0\ninfo: {title: big, version: '1'}\npaths:\n" + lines)
    if vendor_specs().is_dir():
        for item in vendor_specs().iterdir():
            (folder / item.name).symlink_to(item)
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=patience(10))
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def remote(name: str, url: str) -> OpenAPIConnector:
    """A connector from a document on the test server (127.0.0.1: allowed past the SSRF guard)."""
    source = load_spec(url, allow_hosts=["127.0.0.1"])
    return OpenAPIConnector(name, ingest(source, name), spec_uri=source.uri)


def test_multi_file_documents_load_from_disk_and_over_http(http_root: str) -> None:
    root = vendor_spec(f"{MULTIFILE}/spec/swagger.yaml")
    local = OpenAPIConnector.from_spec("pets", root)
    remote_ = remote("pets", f"{http_root}/{MULTIFILE}/spec/swagger.yaml")
    for connector in (local, remote_):
        assert connector.report.tools == 4 and not connector.report.issues
        add = next(t for t in connector.tools() if t.name == "pets.add_pet")
        assert add.input_schema["required"] == ["id", "name"]  # NewPet.yaml: allOf Pet.yaml + its own
    loaded = load_spec(root)
    assert len(loaded.documents) == 4  # ../common/Error.yaml is outside the root's folder: refused
    ((uri, reason),) = loaded.missing.items()
    assert uri.endswith("/common/Error.yaml") and "refused: outside" in reason


def test_json_that_yaml_cannot_read_loads() -> None:
    # Twilio's document is valid JSON with escapes a YAML parser rejects
    assert OpenAPIConnector.from_spec("twilio", vendor_spec("twilio-api-v2010.json")).report.tools == 197


def test_relative_servers_resolve_against_the_document_url(http_root: str) -> None:
    vendor_spec("oai-petstore-expanded.v3.0.yaml")
    connector = remote("pets", f"{http_root}/oai-petstore-expanded.v3.0.yaml")
    operation = connector.operation("pets.find_pets")
    assert connector.base_url_for(operation) == "https://petstore.swagger.io/v2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_url_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}/openapi.json"
    with pytest.raises(ConfigurationError, match=f"{url}: cannot fetch the document: ConnectError"):
        load_spec(url, timeout=patience(5), allow_hosts=[f"127.0.0.1:{url.split(':')[2].split('/')[0]}"])


def test_a_missing_url_says_the_status(http_root: str) -> None:
    with pytest.raises(ConfigurationError, match="answered HTTP 404"):
        load_spec(f"{http_root}/nope.yaml", allow_hosts=["127.0.0.1"])


def test_a_file_that_is_not_a_spec(tmp_path: Path) -> None:
    notes = tmp_path / "notes.yaml"
    notes.write_text("shopping:\n  - milk\n")
    with pytest.raises(ConfigurationError, match=r"notes.yaml: not an OpenAPI or Swagger document"):
        load_spec(notes)
    broken = tmp_path / "broken.json"
    broken.write_text('{"openapi": "3.0.0",\n "paths": {,}}')
    with pytest.raises(ConfigurationError, match=r"broken.json:2: not valid JSON"):
        load_spec(broken)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigurationError, match="not a text document"):
        load_spec(binary)


def test_a_spec_path_that_is_a_folder_or_missing_says_where_the_document_is(tmp_path: Path) -> None:
    """A folder was 'cannot read: Is a directory' with no hint; a misspelt file, 'check the spec path'."""
    (tmp_path / "README.md").write_text("docs")
    with pytest.raises(ConfigurationError, match="this is a folder, not an OpenAPI document") as info:
        load_spec(tmp_path)
    assert info.value.hint is not None and "this folder has none" in info.value.hint
    (tmp_path / "notes.yaml").write_text("x: 1\n")
    (tmp_path / "openapi.json").write_text("{}")
    with pytest.raises(ConfigurationError) as info:
        load_spec(tmp_path)
    document = tmp_path / "openapi.json"
    assert (
        info.value.hint
        == f"point 'spec' at the document itself, e.g. {document} (the folder also holds notes.yaml)"
    )
    with pytest.raises(ConfigurationError, match="no such file") as info:
        load_spec(tmp_path / "openapi.yaml")
    assert info.value.hint == f"check the 'spec' path: did you mean {tmp_path / 'openapi.json'}?"
    with pytest.raises(ConfigurationError) as info:
        load_spec(tmp_path / "specs" / "api.json")
    assert info.value.hint == f"check the 'spec' path: the folder {tmp_path / 'specs'} does not exist"


def test_a_50_mb_document_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: the size cap must act on the size, not after reading
    with pytest.raises(
        ConfigurationError, match=r"huge.json: the document is 52,428,800 bytes .* over the limit"
    ):
        load_spec(huge)


def test_a_large_download_is_cut_off_at_the_cap(http_root: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="over the limit of 1,000,000 bytes"):
        load_spec(f"{http_root}/big.yaml", max_bytes=1_000_000, allow_hosts=["127.0.0.1"])


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


PATHS = """openapi: 3.0.0
info: {title: t, version: '1'}
paths:
  /ok:
    get: {operationId: ok, responses: {'200': {description: ok}}}
  /bad:
    get:
      operationId: bad
      parameters: [{$ref: '%s'}]
      responses: {'200': {description: ok}}
components:
  parameters:
    A: {$ref: '#/components/parameters/B'}
    B: {$ref: '#/components/parameters/A'}
"""


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("other.yaml#/X", "unresolvable $ref 'other.yaml#/X': "),
        ("#/components/parameters/Nope", "unresolvable $ref '#/components/parameters/Nope': no 'Nope'"),
        ("#/components/parameters/A", "$ref loop: file://"),
    ],
)
def test_broken_refs_skip_the_operation_and_name_the_location(tmp_path: Path, ref: str, reason: str) -> None:
    spec = _write(tmp_path, "api.yaml", PATHS % ref)
    report = OpenAPIConnector.from_spec("api", spec).report
    assert report.tools == 1
    (issue,) = report.skipped
    assert issue.pointer == "/paths/~1bad/get/parameters/0" and issue.operation == "bad"
    assert issue.reason.startswith(reason)


def test_a_broken_document_leaves_the_other_connectors_serving(tmp_path: Path) -> None:
    _write(tmp_path, "tools.py", "def hello(name: str) -> str:\n    return 'hi ' + name\n")
    _write(tmp_path, "notes.yaml", "just: notes\n")
    config = _write(
        tmp_path,
        "toolbridge.yaml",
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n"
        "connectors:\n"
        "  local:\n    kind: python\n    tools: [{function: 'tools:hello'}]\n"
        "  broken:\n    kind: openapi\n    spec: notes.yaml\n",
    )
    hub = Hub.from_settings(parse_settings(config.read_text(), source=config))
    broken = hub.connector("broken")
    assert isinstance(broken, OpenAPIConnector) and not broken.tools()
    assert "notes.yaml: not an OpenAPI or Swagger document" in (broken.report.error or "")

    async def call() -> str:
        async with hub:
            return (await hub.call(Principal.local(), "local.hello", {"name": "bo"})).text

    import anyio

    assert anyio.run(call) == "hi bo"


def test_the_catalog_cache_is_used_until_the_document_changes(tmp_path: Path) -> None:
    spec = _write(tmp_path, "api.yaml", PATHS % "#/components/parameters/Nope")
    cache = tmp_path / "cache"
    first = OpenAPIConnector.from_spec("api", spec, cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == 1
    again = OpenAPIConnector.from_spec("api", spec, cache_dir=cache)
    assert [t.input_schema for t in again.tools()] == [t.input_schema for t in first.tools()]
    assert again.report == first.report and again.operation("api.ok") == first.operation("api.ok")
    spec.write_text(PATHS.replace("operationId: ok", "operationId: fine") % "#/components/parameters/Nope")
    changed = OpenAPIConnector.from_spec("api", spec, cache_dir=cache)
    assert [t.name for t in changed.tools()] == ["api.fine"]


TAGGED = """openapi: 3.0.0
info: {title: t, version: '1'}
paths:
  /incidents:
    get: {operationId: listIncidents, tags: [Incidents], responses: {'200': {description: ok}}}
  /views.update:
    get: {operationId: views.update, tags: [views, Views Beta], responses: {'200': {description: ok}}}
"""


def test_tags_and_annotations_come_back_from_the_catalog_cache(tmp_path: Path) -> None:
    """The cache kept no tags, and a catalog cached by an older ingest would keep a writing GET read-only:
    its format is raised when ingest changes."""
    spec = _write(tmp_path, "api.yaml", TAGGED)
    cache = tmp_path / "cache"
    for _ in range(2):  # ingested, then read from the cache
        tools = {t.name: t for t in OpenAPIConnector.from_spec("api", spec, cache_dir=cache).tools()}
        assert tools["api.list_incidents"].tags == ("Incidents",)
        assert tools["api.list_incidents"].annotations.read_only
        assert tools["api.views_update"].tags == ("views", "Views Beta")
        assert not tools["api.views_update"].annotations.read_only
    assert len(list(cache.glob("*.json"))) == 1
