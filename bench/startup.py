"""Start-up time and memory of the CLI and of a serving process (issue 17, items 3 and 4).

Each measure is a fresh process, repeated ``--repeat`` times (median):

* ``import toolbridge`` and ``toolbridge --help``: wall time, CPU time (user + system, from ``wait4``:
  steadier than wall time on a shared machine), peak RSS; then one ``python -X importtime`` run of each,
  summed by top-level package (self time), to name what is left;
* ``toolbridge tools list`` on the PagerDuty document (465 operations, catalog cache off): the same, plus
  one run under ``tracemalloc`` whose peak and live Python allocations are summed by package;
* ``toolbridge serve`` on examples/quickstart.yaml: resident size (``VmRSS``) once ``/healthz`` answers, and
  after 200 tool calls over REST (``util.calculate``); one more start under ``tracemalloc``, summed by
  package the same way.

Child processes run with bytecode caches (``PYTHONDONTWRITEBYTECODE`` removed, one warm-up run first), as
an installed package runs after its first start. Goals (issue 17): ``import toolbridge`` ≤ 0.3 s,
``toolbridge --help`` ≤ 0.5 s, PagerDuty ``tools list`` ≤ 1 s and ≤ 60 MiB.
Usage: ``uv run python bench/startup.py [--repeat 5] [--skip-serve]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _procs import BENCH, free_port

ROOT = BENCH.parent
PAGERDUTY = ROOT.parent / "shared" / "specs" / "pagerduty-rest.json"
QUICKSTART = ROOT / "examples"
GOALS = {"import": 0.3, "help": 0.5, "tools list": 1.0}
RSS_GOAL_MIB = 60.0
TB = [sys.executable, "-m", "toolbridge"]
TOOLS_CONFIG = """\
version: 1
connectors:
  pagerduty:
    kind: openapi
    spec: {spec}
    base_url: http://127.0.0.1:9
    cache: false
"""


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float


def run(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    errors = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({status}): {errors[-600:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def cached_env() -> dict[str, str]:
    """The environment of a user's shell: bytecode caches written and used. (This machine sets
    ``PYTHONDONTWRITEBYTECODE=1``, which makes every process compile every module it imports from source:
    3-5× the start-up CPU of an installed package, whose ``.pyc`` files exist after the first run.)"""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_run(argv: Sequence[str], cwd: Path, repeat: int) -> Run:
    run(argv, cwd, cached_env())  # writes the bytecode caches, as a user's first run does
    runs = [run(argv, cwd, cached_env()) for _ in range(repeat)]
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in ("wall", "cpu", "rss_mib")))


def import_times(argv: Sequence[str], cwd: Path) -> list[tuple[str, float]]:
    """Self import time by top-level package (ms), largest first, from ``python -X importtime``."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=cwd,
        env=cached_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    by_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        if top == "toolbridge":
            top = ".".join(name.strip().split(".")[:2])
        by_package[top] += int(own) / 1000
    return sorted(by_package.items(), key=lambda kv: -kv[1])


PROBE = """
import json, sys, threading, tracemalloc
from collections import defaultdict
tracemalloc.start(8)
mode, args, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]

def package(filename):
    parts = filename.replace("\\\\", "/").split("/")
    for marker in ("site-packages", "src"):
        if marker in parts[:-1]:
            rest = parts[parts.index(marker) + 1:]
            top = rest[0].removesuffix(".py")
            if top == "toolbridge" and len(rest) >= 3:
                top += "." + rest[1]
            return top
    return None

def owner(traceback):
    # module code loaded by an import counts as "(module code)"; else the innermost frame of a package
    frames = list(traceback)[::-1]  # innermost first
    if frames and frames[0].filename.startswith("<frozen importlib"):
        return "(module code)"
    for frame in frames:
        found = package(frame.filename)
        if found:
            return found
    return "(stdlib)"

def dump():
    current, peak = tracemalloc.get_traced_memory()
    sums = defaultdict(int)
    owners = {}
    for trace in tracemalloc.take_snapshot().traces:
        key = trace.traceback
        if key not in owners:
            owners[key] = owner(key)
        sums[owners[key]] += trace.size
    top = sorted(sums.items(), key=lambda kv: -kv[1])[:12]
    with open(out, "w") as f:
        json.dump({"current": current, "peak": peak, "by_package": top}, f)

from toolbridge.cli import app
if mode == "serve":
    import os, time, urllib.request
    def watch():
        port = args[args.index("--port") + 1]
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        dump()
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
try:
    app(args, standalone_mode=False)
finally:
    if mode != "serve":
        dump()
"""


def traced(mode: str, args: Sequence[str], cwd: Path) -> dict[str, object]:
    out = cwd / f"traced-{mode}.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, mode, *args, str(out)],
        cwd=cwd,
        capture_output=True,
        check=False,
        timeout=600,
    )
    return json.loads(out.read_text()) if out.exists() else {"error": "the traced run wrote nothing"}


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(folder: Path) -> dict[str, float]:
    """``toolbridge serve`` on the quickstart: RSS when ready, after 200 REST calls, and its peak."""
    port = free_port()
    argv = [*TB, "serve", "-c", "quickstart.yaml", "--port", str(port), "--create-agent", "assistant"]
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=folder, env=cached_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        key = _wait_ready(child, port)
        ready = time.perf_counter() - started
        rss_ready = vm(child.pid, "VmRSS")
        body = json.dumps({"arguments": {"expression": "6*7"}}).encode()
        for _ in range(200):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/tools/util.calculate/call",
                data=body,
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=30).read()
        return {
            "ready_s": ready,
            "rss_ready": rss_ready,
            "rss_200": vm(child.pid, "VmRSS"),
            "hwm": vm(child.pid, "VmHWM"),
        }
    finally:
        child.terminate()
        child.wait(10)


def _wait_ready(child: subprocess.Popen[str], port: int) -> str:
    key = ""
    deadline = time.monotonic() + 120
    assert child.stdout is not None
    while time.monotonic() < deadline and not key:
        line = child.stdout.readline()
        if not line:
            raise SystemExit("toolbridge serve ended before it printed a key")
        if "tb_" in line:
            key = next(word for word in line.split() if word.startswith("tb_"))
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return key
        except OSError:
            time.sleep(0.05)
    raise SystemExit("toolbridge serve did not answer /healthz in 120 s")


def show_imports(label: str, times: list[tuple[str, float]]) -> None:
    total = sum(t for _, t in times)
    top = ", ".join(f"{name} {ms:.0f}" for name, ms in times[:8])
    print(f"  {label}: imports {total:.0f} ms self time in all; largest (ms): {top}")


def show_traced(label: str, traced_: dict[str, object]) -> None:
    if "error" in traced_:
        print(f"  {label}: tracemalloc: {traced_['error']}")
        return
    mib = 1024 * 1024
    by = traced_["by_package"]
    assert isinstance(by, list)
    parts = ", ".join(f"{name} {size / mib:.1f}" for name, size in by[:10])
    peak, current = traced_["peak"], traced_["current"]
    assert isinstance(peak, int) and isinstance(current, int)
    print(
        f"  {label}: Python allocations peak {peak / mib:.1f} MiB, live {current / mib:.1f} MiB; "
        f"live by package (MiB): {parts}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[0]} (2 cores; CPU time is steadier than wall time)")
    rows: list[tuple[str, Run]] = []
    with tempfile.TemporaryDirectory(prefix="toolbridge-startup-") as tmp:
        folder = Path(tmp)
        (folder / "toolbridge.yaml").write_text(TOOLS_CONFIG.format(spec=PAGERDUTY))
        commands = {
            "import": [sys.executable, "-c", "import toolbridge"],
            "help": [*TB, "--help"],
            "tools list": [*TB, "tools", "list", "pagerduty"],
        }
        for name, argv in commands.items():
            rows.append((name, median_run(argv, folder, args.repeat)))
        print(f"\n{'process':<46} {'wall s':>7} {'CPU s':>7} {'peak RSS MiB':>13}")
        labels = {
            "import": "python -c 'import toolbridge'",
            "help": "toolbridge --help",
            "tools list": "toolbridge tools list (PagerDuty, 465 ops)",
        }
        for name, r in rows:
            print(f"{labels[name]:<46} {r.wall:>7.3f} {r.cpu:>7.3f} {r.rss_mib:>13.1f}")
        print()
        for name, argv in commands.items():
            show_imports(labels[name], import_times(argv, folder))
        show_traced("tools list", traced("tools", ["tools", "list", "pagerduty"], folder))
        served: dict[str, float] | None = None
        if not args.skip_serve:
            for item in ("quickstart.yaml", "quickstart_tools.py"):
                shutil.copy(QUICKSTART / item, folder / item)
            served = serve(folder)
            print(
                f"\ntoolbridge serve (quickstart): ready in {served['ready_s']:.2f} s; "
                f"RSS {served['rss_ready']:.1f} MiB when ready, "
                f"{served['rss_200']:.1f} MiB after 200 REST calls "
                f"(peak {served['hwm']:.1f} MiB)"
            )
            port = str(free_port())
            show_traced("serve", traced("serve", ["serve", "-c", "quickstart.yaml", "--port", port], folder))
    print(f"\n{'headline':<52} {'value':>7}  {'goal':<10} met")
    results = dict(rows)
    for name, goal in GOALS.items():
        for what, value in (("wall", results[name].wall), ("CPU", results[name].cpu)):
            label, verdict = f"{labels[name]} {what} (s)", "yes" if value <= goal else "NO"
            print(f"{label:<52} {value:>7.3f}  {'<= ' + str(goal) + ' s':<10} {verdict}")
    rss = results["tools list"].rss_mib
    verdict = "yes" if rss <= RSS_GOAL_MIB else "NO"
    print(f"{'toolbridge tools list peak RSS (MiB)':<52} {rss:>7.1f}  {'<= 60 MiB':<10} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
