"""Sampling profiles of a benchmark server with py-spy, and a plain-text summary of where time went.

``record`` runs ``py-spy record --format raw`` (collapsed stacks) against a server while a load runs;
``summarize`` reads that file and lists the packages and functions that used the most samples, by self
time (the sample's innermost frame) and inclusive time (anywhere on the stack). Samples of a worker
thread blocked on its queue are dropped: py-spy cannot tell that wait from work.
"""

from __future__ import annotations

import contextlib
import linecache
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_BLOCKING_GET = re.compile(r"\b(tx|queue|q)\.get\(")
"""A worker thread blocked on its queue (aiosqlite's ``tx.get()``): py-spy counts it as busy; it is idle."""
_CATEGORIES = (  # first match of a path fragment wins
    ("toolbridge", "/toolbridge/"),
    ("mcp SDK", "/mcp/"),
    ("mcp SDK", "/mcp_types/"),
    ("fastmcp", "/fastmcp/"),
    ("pydantic", "/pydantic"),
    ("jsonschema", "/jsonschema"),
    ("jsonschema", "/referencing/"),
    ("jsonschema", "/rpds"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("aiosqlite/sqlite3", "/aiosqlite/"),
    ("aiosqlite/sqlite3", "/sqlite3/"),
    ("fastapi", "/fastapi/"),
    ("starlette", "/starlette/"),
    ("sse-starlette", "/sse_starlette/"),
    ("uvicorn/h11", "/uvicorn/"),
    ("uvicorn/h11", "/h11/"),
    ("anyio", "/anyio/"),
    ("asyncio", "/asyncio/"),
    ("json", "/json/"),
    ("threading/queue", "/threading.py"),
    ("threading/queue", "/queue.py"),
)


def py_spy() -> list[str]:
    """The py-spy command: on PATH, else run through ``uvx`` (fetched from PyPI on first use)."""
    found = shutil.which("py-spy")
    if found:
        return [found]
    tools = str(Path(__file__).resolve().parent.parent / ".tools" / "bin")
    uvx = shutil.which("uvx") or shutil.which("uvx", path=tools)
    if uvx is None:
        raise RuntimeError("--profile needs py-spy on PATH or uv's 'uvx' (run 'make env' to install uv)")
    return [uvx, "--from", "py-spy==0.4.3", "py-spy"]


@contextlib.contextmanager
def record(pid: int, out: Path, *, rate: int = 250, attach_timeout: float = 30.0) -> Iterator[None]:
    """Sample ``pid`` into ``out`` (collapsed stacks) for the duration of the ``with`` block."""
    log = out.with_suffix(".log")
    argv = [
        *py_spy(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + attach_timeout
        while b"Sampling process" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"py-spy did not attach to {pid}: {log.read_text(errors='replace')[-500:]}"
                )
            time.sleep(0.05)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _frames(stack: str) -> list[tuple[str, str, int]]:
    """(function, file, line) of one collapsed stack, outermost first, without process/thread frames."""
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        if match and match["file"]:
            frames.append((match["func"], match["file"], int(match["line"] or 0)))
    return frames


def _source_line(file: str, line: int) -> str:
    """The source text of ``file``:``line``, ``file`` as py-spy shows it (relative to a sys.path entry)."""
    for root in sys.path:
        candidate = Path(root) / file
        if candidate.is_file():
            return linecache.getline(str(candidate), line)
    return ""


def _idle(frame: tuple[str, str, int]) -> bool:
    return bool(_BLOCKING_GET.search(_source_line(frame[1], frame[2])))


def category(path: str) -> str:
    path = "/" + path.lstrip("/")
    for name, fragment in _CATEGORIES:
        if fragment in path:
            return name
    return "other (stdlib, C)" if "/" not in path.strip("/") or path.startswith("/<") else "other"


def _short(func: str, path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarize(path: Path, *, top: int = 20) -> str:
    """Where the samples in the collapsed-stack file ``path`` went, as a text report."""
    self_fn: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), _frames(stack)
        if not frames or _idle(frames[-1]):
            continue
        total += count
        func, file, _line = frames[-1]
        self_fn[_short(func, file)] += count
        by_category[category(file)] += count
        for key in {_short(f, p) for f, p, _ in frames}:
            inclusive[key] += count
    if total == 0:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples", "", "self time by package (innermost frame):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_category.most_common()]
    lines += ["", f"top {top} functions by self time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in self_fn.most_common(top)]
    lines += ["", f"top {top} functions by inclusive time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)
