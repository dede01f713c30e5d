"""OpenAPI ingest: toolbridge against FastMCP 4.1.6's OpenAPI import, on four large real documents.

For each document and each implementation, a fresh Python process loads the document, builds the tool
catalog and lists it as MCP ``tools/list`` would. Measured per process:

* **ready** — seconds from "start loading the document" to "catalog ready" (imports excluded; shown apart);
  toolbridge is measured cold and with its catalog cache filled (``tb cached``: a restart);
* **process** — wall seconds of the whole process (interpreter start, imports, ready, listing);
* **peak RSS** — the process's peak resident memory (``ru_maxrss``);
* **listing** — bytes of the compact JSON ``{"tools": [...]}`` each would send (toolbridge: name,
  description, inputSchema, annotations; FastMCP: its own MCP tool objects, output schemas included);
* **info** — what an agent needs to build a valid call, counted on both sides: tools, top-level
  arguments and required arguments (so a smaller listing is not one that lost them).

**CLI, whole process** — ``toolbridge tools list NAME`` for a ``toolbridge.yaml`` with that one document,
as a user runs it (the console script: interpreter start, imports, settings, loading, the printed table),
cold (no catalog cache) and cached, beside FastMCP's whole process above: wall seconds and peak RSS
(``wait4``), and how many times faster toolbridge is.

FastMCP runs in its own virtual environment (bench/.venvs/fastmcp, created with uv when missing).
Goals: ready ≤ 0.1 s, peak RSS ≤ 60 MiB, listing ≤ 25% of FastMCP's bytes; the CLI ≥ 3× faster than
FastMCP's process and ≤ 60 MiB.

    uv run python bench/openapi_ingest.py [--only pagerduty,openai] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _procs import ServerFailed, fastmcp_python

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / ".." / "shared" / "specs"
DOCUMENTS = {
    "pagerduty": "pagerduty-rest.json",
    "openai": "openai.yaml",
    "slack": "slack-web.v2.json",
    "twilio": "twilio-api-v2010.json",
}

_COMMON = r"""
import json, resource, sys, time
started = time.perf_counter()
path = sys.argv[1]

def report(ready, tools):
    listing = json.dumps({"tools": tools}, separators=(",", ":"), ensure_ascii=False).encode()
    schemas = [t.get("inputSchema", {}) for t in tools]
    print(json.dumps({
        "imports": imported - started,
        "ready": ready,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes": len(listing),
        "tools": len(tools),
        "arguments": sum(len(s.get("properties", {})) for s in schemas),
        "required": sum(len(s.get("required", [])) for s in schemas),
    }))
"""

TOOLBRIDGE = (
    _COMMON
    + r"""
from toolbridge import Hub
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.surfaces.mcp._wire import tool_to_wire
imported = time.perf_counter()
cache = sys.argv[2] if len(sys.argv) > 2 else None
hub = Hub()
hub.add_connector(OpenAPIConnector.from_spec("api", path, base_url="http://127.0.0.1:9", cache_dir=cache))
ready = time.perf_counter() - imported
report(ready, [tool_to_wire(t) for t in hub.catalog])
"""
)

FASTMCP = (
    _COMMON
    + r"""
import asyncio
import yaml
import httpx2
from fastmcp import FastMCP
imported = time.perf_counter()

async def main():
    text = open(path, encoding="utf-8").read()
    spec = json.loads(text) if path.endswith(".json") else yaml.load(text, Loader=yaml.CSafeLoader)
    server = FastMCP.from_openapi(spec, client=httpx2.AsyncClient(base_url="http://127.0.0.1:9"))
    tools = await server.list_tools()
    ready = time.perf_counter() - imported
    wire = [t.to_mcp_tool().model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
    report(ready, wire)

asyncio.run(main())
"""
)


@dataclass
class Outcome:
    ready: float = 0.0
    process: float = 0.0
    imports: float = 0.0
    rss_mib: float = 0.0
    bytes: int = 0
    tools: int = 0
    arguments: int = 0
    required: int = 0
    error: str | None = None


def run_once(python: Path | str, code: str, document: Path, *extra: str) -> Outcome:
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", code, str(document), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return Outcome(error=(lines[-1] if lines else f"exit {done.returncode}")[:160])
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Outcome(process=wall, **data)


CLI_CONFIG = """version: 1
server: {{database: 'sqlite+aiosqlite:///:memory:'}}
connectors:
  {name}:
    kind: openapi
    spec: {spec}
    base_url: http://127.0.0.1:9
    cache: {cache}
"""


def run_cli(name: str, document: Path, *, cached: bool) -> Outcome:
    """``toolbridge tools list NAME`` as a fresh process; wall time and peak RSS of that process."""
    script = Path(sys.executable).with_name("toolbridge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "toolbridge"]
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "toolbridge.yaml"
        config.write_text(CLI_CONFIG.format(name=name, spec=document, cache=str(cached).lower()))
        args = [*command, "tools", "list", name, "-c", str(config)]
        if cached:
            subprocess.run(args, capture_output=True, timeout=300, cwd=folder, check=False)
        with open(Path(folder) / "stderr", "wb") as errors:
            started = time.perf_counter()
            child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors, cwd=folder)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
        if status != 0:
            tail = (Path(folder) / "stderr").read_text(errors="replace").strip().splitlines()
            return Outcome(error=(tail[-1] if tail else f"status {status}")[:160])
    return Outcome(process=wall, rss_mib=usage.ru_maxrss / 1024)


def measure_cli(name: str, document: Path, repeat: int, *, cached: bool) -> Outcome:
    runs = [run_cli(name, document, cached=cached) for _ in range(repeat)]
    failed = next((r for r in runs if r.error), None)
    if failed is not None:
        return failed
    return Outcome(process=statistics.median(r.process for r in runs), rss_mib=max(r.rss_mib for r in runs))


def cli_row(name: str, impl: str, o: Outcome, fastmcp: Outcome) -> str:
    if o.error:
        return f"{name:<10} {impl:<14} FAILED: {o.error}"
    faster = f"{fastmcp.process / o.process:>7.1f}×" if not fastmcp.error else "    n/a"
    return f"{name:<10} {impl:<14} {o.process:>8.2f} {o.rss_mib:>8.1f} {faster}"


def measure(python: Path | str, code: str, document: Path, repeat: int, *extra: str) -> Outcome:
    runs = [run_once(python, code, document, *extra) for _ in range(repeat)]
    failed = next((r for r in runs if r.error), None)
    if failed is not None:
        return failed
    best = runs[0]
    best.ready = statistics.median(r.ready for r in runs)
    best.process = statistics.median(r.process for r in runs)
    best.imports = statistics.median(r.imports for r in runs)
    best.rss_mib = max(r.rss_mib for r in runs)
    return best


def row(name: str, impl: str, o: Outcome) -> str:
    if o.error:
        return f"{name:<10} {impl:<10} FAILED: {o.error}"
    return (
        f"{name:<10} {impl:<10} {o.ready:>8.3f} {o.imports:>8.3f} {o.process:>8.2f} {o.rss_mib:>8.1f} "
        f"{o.bytes / 1e6:>9.3f} {o.tools:>6} {o.arguments:>6} {o.required:>6}"
    )


def ratio_row(ours: Outcome, theirs: Outcome) -> str:
    if ours.error or theirs.error:
        return f"{'':<10} {'ratio':<10} n/a (FastMCP cannot ingest this document)" if theirs.error else ""
    ready, process = ours.ready / theirs.ready, ours.process / theirs.process
    return (
        f"{'':<10} {'ratio':<10} {ready:>8.2f} {'':>8} {process:>8.2f} "
        f"{ours.rss_mib / theirs.rss_mib:>8.2f} {ours.bytes / theirs.bytes:>9.1%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(DOCUMENTS))
    parser.add_argument("--repeat", type=int, default=3, help="processes per measurement (median)")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(DOCUMENTS)
    try:
        fastmcp = fastmcp_python()
    except (ServerFailed, subprocess.SubprocessError) as exc:
        print(f"FastMCP baseline unavailable: {exc}", file=sys.stderr)
        return 1
    print(
        f"{'document':<10} {'impl':<10} {'ready s':>8} {'import s':>8} {'proc s':>8} {'RSS MiB':>8} "
        f"{'list MB':>9} {'tools':>6} {'args':>6} {'req':>6}"
    )
    failed = False
    processes: list[str] = []
    for name in chosen:
        document = (SPECS / DOCUMENTS[name]).resolve()
        ours = measure(sys.executable, TOOLBRIDGE, document, args.repeat)
        with tempfile.TemporaryDirectory() as cache:
            run_once(sys.executable, TOOLBRIDGE, document, cache)  # fills the cache
            cached = measure(sys.executable, TOOLBRIDGE, document, args.repeat, cache)
        theirs = measure(fastmcp, FASTMCP, document, args.repeat)
        failed = failed or ours.error is not None or cached.error is not None
        lines = (
            row(name, "toolbridge", ours),
            row(name, "tb cached", cached),
            row(name, "fastmcp", theirs),
            ratio_row(ours, theirs),
        )
        for line in lines:
            if line:
                print(line, flush=True)
        cold = measure_cli(name, document, args.repeat, cached=False)
        warm = measure_cli(name, document, args.repeat, cached=True)
        failed = failed or cold.error is not None or warm.error is not None
        processes += [
            cli_row(name, "tools list", cold, theirs),
            cli_row(name, "tools list ♻", warm, theirs),
            cli_row(name, "fastmcp proc", theirs, theirs) if not theirs.error else "",
        ]
    print("goals: ready ≤ 0.1 s, peak RSS ≤ 60 MiB, listing ≤ 25% of FastMCP's bytes")
    print(f"\nwhole processes\n{'document':<10} {'impl':<14} {'wall s':>8} {'RSS MiB':>8} {'faster':>8}")
    print("\n".join(line for line in processes if line))
    print("goals: `toolbridge tools list` ≥ 3× faster than FastMCP's process, peak RSS ≤ 60 MiB (♻: cached)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
