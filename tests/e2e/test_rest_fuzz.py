"""The REST API against its own document, judged from outside: schemathesis (its own virtual environment,
tests/.venvs/schemathesis) reads ``/v1/openapi.json`` of a real ``toolbridge serve`` process and sends
what the document allows and what it does not — every check it has, a fixed seed, a bounded number of
examples per operation. What counts: no server error, and every status, content type and header an
answer carries is in the document. Beside it, the document names every route the server has.

What schemathesis is told differently is in tests/e2e/schemathesis.toml, each with its reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from starlette.routing import Mount, Route

from tests._patience import patience
from tests._venvs import venv_python
from tests.e2e.test_serve import TOOLBRIDGE, Server, serving

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples"
SPEC = ("schemathesis==4.32.5",)  # the Makefile's FUZZ_SPEC
SEED = 20261203
EXAMPLES_PER_OPERATION = 25

# the quickstart's tools and workspace, a connector that takes connections, a pipeline and a webhook
# subscription: every route has something behind it
CONFIG = """
version: 1
connectors:
  util:
    kind: python
    tools:
      - {function: quickstart_tools:now, read_only: true}
      - {function: quickstart_tools:calculate, read_only: true}
  notes:
    kind: python
    tools:
      - {function: quickstart_tools:add_note, name: add}
      - {function: quickstart_tools:list_notes, name: list, read_only: true}
      - {function: quickstart_tools:delete_note, name: delete, destructive: true}
    connections: {scheme: api_key, name: X-Api-Key, location: header, policy: per_user_or_shared}
  workspace:
    kind: workspace
    workspace: shared
    members: {assistant: editor}
pipelines:
  remember:
    description: Add a note, then list them.
    input: {type: object, properties: {text: {type: string}}, required: [text]}
    steps:
      - {name: add, tool: notes.add, arguments: {text: "${input.text}"}}
      - {name: list, tool: notes.list, arguments: {}}
hooks:
  pushes: {verifier: standard, secret: env:TB_FUZZ_HOOK_SECRET}
subscriptions:
  pushed:
    source: pushes
    type: push
    principals: [assistant]
agents:
  assistant:
    scopes: ["util.*", "notes.*", "workspace.*", "pipelines.*", "events.*"]
  ops:
    scopes: ["*"]
"""

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the source 'pushes'
SERVER_ENV = {"PYTHONPATH": str(EXAMPLES), "TB_FUZZ_HOOK_SECRET": HOOK_SECRET}
"""What CONFIG needs of its process (the quickstart's tools, the webhook secret)."""

# schemathesis cannot send tus's PATCH body type unless told it is plain bytes
HOOKS = """
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
"""


@contextmanager
def fuzzed_server(cwd: Path) -> Iterator[Server]:
    """``toolbridge serve`` of CONFIG in ``cwd`` (tests/e2e/test_rest_bad_input.py probes it too)."""
    (cwd / "toolbridge.yaml").write_text(CONFIG)
    with serving(cwd / "toolbridge.yaml", cwd, SERVER_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fuzzed_server(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


def test_every_answer_is_in_the_document_and_none_is_a_server_error(served: Server, tmp_path: Path) -> None:
    python = venv_python("schemathesis", SPEC)
    (tmp_path / "toolbridge_fuzz_hooks.py").write_text(HOOKS)
    command = [
        str(Path(python).with_name("st")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{served.base}/v1/openapi.json",
        "--checks",
        "all",
        # /connections/connect and /connections/callback are also /connections/{ident} for a connection of
        # that name, so a 405's Allow there rightly names GET and DELETE too, which a document listing
        # operations per path template cannot show (and schemathesis's per-operation settings do not
        # reach this check): test_a_405_names_every_method_of_its_path checks Allow instead
        "--exclude-checks",
        "allow_header_conformance",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--request-timeout",
        str(patience(20)),
        "--no-color",
    ]
    operator = subprocess.run(
        [*TOOLBRIDGE, "agents", "create", "ops", "-c", "toolbridge.yaml"],
        cwd=served.cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=patience(120),
        env={**os.environ, **SERVER_ENV},
    )
    keys = {
        "TB_FUZZ_KEY": served.key,
        "TB_FUZZ_OPERATOR_KEY": next(w for w in operator.stdout.split() if w.startswith("tb_")),
    }
    env = {**os.environ, **keys, "SCHEMATHESIS_HOOKS": "toolbridge_fuzz_hooks", "PYTHONPATH": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    run = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=patience(600)
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, "schemathesis found answers the document does not allow:\n" + report
    assert "Authentication failed" not in report, report  # the key worked: the operations were reached
    document = httpx2.get(f"{served.base}/v1/openapi.json", timeout=patience(10)).json()
    operations = sum(len(set(item) - {"servers"}) for item in document["paths"].values())
    assert f"{operations} selected / {operations} total" in report, report  # none left out


def test_the_document_names_every_route_the_server_has(served: Server) -> None:
    """Every route of the application, walked with its mount prefixes, is an operation of the document at
    its server's URL, and the other way round: ``/hooks/{source}``, ``/healthz`` and ``/`` were left out
    (each documented path now names its server, ``/`` outside ``/v1``). Not documented: ``/mcp`` (MCP's own
    specification is its document), ``/v1/docs``, the document itself, and the admin UI under ``/admin``
    (HTML pages and forms for a person's browser with a session cookie, not an API: docs/admin-ui.md is its
    document, tests/surfaces/admin its tests)."""
    from toolbridge import Hub
    from toolbridge.surfaces.app import create_app

    document = httpx2.get(f"{served.base}/v1/openapi.json", timeout=patience(10)).json()
    documented = set()
    for path, item in document["paths"].items():
        base = item.get("servers", document["servers"])[0]["url"].rstrip("/")
        documented |= {(method, base + path) for method in item if method != "servers"}
    served_routes = set()
    for route, prefix in _routes_with_prefixes(create_app(Hub())):
        for method in route.methods or ():
            if method != "HEAD" or route.methods == {"HEAD"}:
                served_routes.add((method.lower(), prefix + route.path))
    undocumented = {("get", "/mcp"), ("post", "/mcp"), ("delete", "/mcp")}
    assert {r for r in served_routes - documented if not r[1].startswith("/admin")} == undocumented
    assert documented - served_routes == set()
    assert json.dumps(document).count('"HTTPValidationError"') == 0  # invalid requests answer 400 problems


def _routes_with_prefixes(app: object, prefix: str = "") -> list[tuple[Route, str]]:
    """The routes of a (wrapped) Starlette or FastAPI application with the prefix of the mount each is
    under, those of mounted applications and included routers too."""
    while not hasattr(app, "routes"):
        if not hasattr(app, "app"):
            return []  # a bare ASGI application: the MCP transport mounted under /mcp
        app = app.app  # middleware wrappers
    found: list[tuple[Route, str]] = []
    for route in app.routes:
        if hasattr(route, "original_router"):  # FastAPI includes routers lazily; their paths carry the prefix
            found += _routes_with_prefixes(route.original_router, prefix)
        elif isinstance(route, Mount):
            found += _routes_with_prefixes(route.app, prefix + route.path)
        elif isinstance(route, Route) and route.path not in (
            "/openapi.json",
            "/docs",
            "/docs/oauth2-redirect",
        ):
            found.append((route, prefix))
    return found


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/connections/c1", "GET, DELETE"),  # two FastAPI routes, one on an included router
        ("/v1/tools", "GET"),
        ("/v1/workspaces/shared/content?path=/a", "GET, PUT, DELETE"),  # three Starlette routes
        ("/v1/workspaces/shared/uploads", "POST, OPTIONS"),
        ("/hooks/pushes", "POST"),  # the server's own routes
    ],
)
def test_a_405_names_every_method_of_its_path(served: Server, path: str, allowed: str) -> None:
    """Starlette's 405 named only the first route on the path (``Allow: GET`` for GET and DELETE)."""
    answer = httpx2.request(
        "PATCH", served.base + path, headers={"Authorization": f"Bearer {served.key}"}, timeout=patience(10)
    )
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["hint"] == f"this path takes {allowed}"


@pytest.mark.parametrize("query", ["wait=abc", "wait=nan", "wait=inf", "cursor=x", "limit=1e3"])
def test_a_malformed_number_in_a_query_is_a_400_naming_it(served: Server, query: str) -> None:
    """``changes?wait=abc`` answered 500 (schemathesis found it)."""
    answer = httpx2.get(
        f"{served.base}/v1/workspaces/shared/changes?{query}",
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=patience(10),
    )
    assert answer.status_code == 400, answer.text
    assert query.split("=")[0] in answer.json()["detail"]
