"""Workspace benchmark: a 1 GiB tus upload against a plain copy of the same bytes on the same disk, small-file
writes per second, and the lease acquire/release median.

    uv run python bench/workspace.py [--size-mib 1024] [--small 500] [--leases 500]

Goals (issue #7): tus throughput ≥ 70% of the copy, server peak RSS ≤ 150 MB. Not run by ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2

from _procs import free_port, running

CHUNK = 8 << 20
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, database: "sqlite+aiosqlite:///{root}/tb.db"}}
connectors:
  workspace:
    kind: workspace
    members: {{bench: editor}}
    blob_path: {root}/blobs
agents:
  bench: {{scopes: ["workspace.*"]}}
"""


def make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with path.open("wb") as f:
        left = size
        while left > 0:
            piece = block[: min(CHUNK, left)]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def copy_baseline(source: Path, target: Path) -> float:
    started = time.perf_counter()
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    return time.perf_counter() - started


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def tus_upload(base: str, key: str, source: Path, size: int) -> float:
    import base64

    meta = "path " + base64.b64encode(b"/bench/big.bin").decode()
    headers = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    with httpx2.Client(trust_env=False, timeout=600) as http:
        started = time.perf_counter()
        created = http.post(
            f"{base}/v1/workspaces/shared/uploads",
            headers={**headers, "Upload-Length": str(size), "Upload-Metadata": meta},
        )
        created.raise_for_status()
        patch = http.patch(
            base + created.headers["location"],
            content=_chunks(source),
            headers={
                **headers,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
                "Content-Length": str(size),
            },
        )
        elapsed = time.perf_counter() - started
        if patch.status_code != 204:
            raise SystemExit(f"upload failed: {patch.status_code} {patch.text}")
    return elapsed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def upload_bench(root: Path, size: int) -> dict[str, float]:
    port = free_port()
    config = root / "toolbridge.yaml"
    config.write_text(CONFIG.format(port=port, root=root))
    python = sys.executable
    key = subprocess.run(
        [python, "-m", "toolbridge", "agents", "create", "bench", "-c", str(config)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    source = root / "source.bin"
    make_source(source, size)
    copy_seconds = copy_baseline(source, root / "copy.bin")
    (root / "copy.bin").unlink()
    argv = [python, "-m", "toolbridge", "serve", "-c", str(config)]
    with running("toolbridge-workspace", argv, port, root) as server:
        base_rss = peak_rss_mb(server.pid)
        seconds = tus_upload(server.base_url, key, source, size)
        peak = peak_rss_mb(server.pid)
    mib = size / (1 << 20)
    return {
        "size_mib": mib,
        "copy_mib_s": mib / copy_seconds,
        "tus_mib_s": mib / seconds,
        "ratio": copy_seconds / seconds,
        "server_rss_start_mb": base_rss,
        "server_peak_rss_mb": peak,
    }


async def small_and_leases(root: Path, small: int, leases: int) -> dict[str, float]:
    from toolbridge.policy import Principal
    from toolbridge.storage import Database
    from toolbridge.workspace import LocalBlobStore, Role, Workspaces

    agent = Principal.agent("bench", ["workspace.*"])
    async with Database(f"sqlite+aiosqlite:///{root}/small.db") as db:
        ws = Workspaces(db, LocalBlobStore(root / "small-blobs"))
        await ws.ensure("b", members={agent.id: Role.EDITOR})
        payload = os.urandom(1024)
        started = time.perf_counter()
        for i in range(small):
            await ws.write(agent, "b", f"/small/{i}.bin", payload[:-4] + i.to_bytes(4, "big"))
        writes_per_s = small / (time.perf_counter() - started)
        acquire, release = [], []
        for _ in range(leases):
            t0 = time.perf_counter()
            lease = await ws.lock(agent, "b", "/lease")
            t1 = time.perf_counter()
            await ws.unlock(agent, "b", "/lease", lease.token)
            t2 = time.perf_counter()
            acquire.append(t1 - t0)
            release.append(t2 - t1)
    return {
        "small_writes_per_s": writes_per_s,
        "lease_acquire_median_ms": statistics.median(acquire) * 1000,
        "lease_release_median_ms": statistics.median(release) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--leases", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tb-bench-ws-", dir=args.dir) as tmp:
        root = Path(tmp)
        results = upload_bench(root, args.size_mib << 20)
        results.update(anyio.run(small_and_leases, root, args.small, args.leases))
    results["goal_ratio_met"] = results["ratio"] >= 0.70
    results["goal_rss_met"] = results["server_peak_rss_mb"] <= 150
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2))
    out = Path(__file__).parent / "results" / "workspace.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
