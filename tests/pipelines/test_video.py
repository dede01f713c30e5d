"""The video pipeline — download → transform → upload → record → notify — against a counting REST upstream
on 127.0.0.1 and the workspace, on SQLite and PostgreSQL: a failure at each step undoes the earlier ones
(the upstream's live objects return to zero, the uploaded file is gone); a worker killed with SIGKILL at
each step leaves a run that another worker completes with every effect applied exactly once; two workers
on PostgreSQL never run a step twice."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub
from toolbridge.errors import ToolExecutionError
from toolbridge.pipelines import PipelineService, pipeline_service
from toolbridge.policy import Principal

from ._media import KINDS, Media, write_document

pytestmark = pytest.mark.anyio
ME = Principal.local("operator")
STEPS = ["00.download", "01.transform", "02.upload", "03.record", "04.notify"]

PIPELINE = """\
pipeline_worker: {lease: 2, poll_interval: 0.1}
pipelines:
  video:
    description: Fetch a video, transcode it, store it in the workspace, record it and tell the team.
    input:
      type: object
      properties: {url: {type: string}, title: {type: string}}
      required: [url, title]
    steps:
      - name: download
        tool: media.create_download
        arguments: {url: "${input.url}"}
        compensate: {tool: media.delete_download, arguments: {id: "${output.id}"}}
      - name: transform
        tool: media.create_transcode
        arguments: {source: "${steps.download.id}", format: mp4}
        check: {require: ["output.bytes > `0`"]}
        compensate: {tool: media.delete_transcode, arguments: {id: "${output.id}"}}
      - name: upload
        tool: workspace.write
        arguments:
          path: "/videos/${input.title}.json"
          content: "${to_string(steps.transform)}"
          expected_version: 0
        compensate: {tool: workspace.delete, arguments: {path: "/videos/${input.title}.json"}}
      - name: record
        tool: media.create_record
        arguments: {title: "${input.title}", path: "/videos/${input.title}.json"}
        compensate: {tool: media.delete_record, arguments: {id: "${output.id}"}}
      - name: notify
        tool: media.create_notification
        arguments: {channel: team, text: "${input.title} is ready"}
    output: {record: "${steps.record.id}", file: "/videos/${input.title}.json"}
"""


def config_text(folder: Path, media_url: str, database: str) -> str:
    port = media_url.rsplit(":", 1)[1]
    return f"""\
server: {{database: "{database}"}}
connectors:
  media:
    kind: openapi
    spec: {write_document(folder)}
    base_url: {media_url}
    allow_hosts: ["127.0.0.1:{port}"]
    resilience: {{retry: {{max_attempts: 1}}}}
  workspace:
    kind: workspace
    workspace: studio
    blob_path: {folder / "blobs"}
{PIPELINE}"""


@pytest.fixture
def media() -> Iterator[tuple[Media, str]]:
    server = Media()
    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with uvicorn_thread(server.app(), sock):
        yield server, url


@pytest.fixture
def config(tmp_path: Path, media: tuple[Media, str], database_url: str) -> Path:
    path = tmp_path / "toolbridge.yaml"
    path.write_text(config_text(tmp_path, media[1], database_url))
    return path


@pytest.fixture
async def hub(config: Path) -> AsyncIterator[Hub]:
    async with Hub.from_file(config) as running:
        yield running


def service_of(hub: Hub) -> PipelineService:
    found = pipeline_service(hub)
    assert found is not None
    return found


async def stored_file(hub: Hub, title: str) -> Any:
    try:
        return (await hub.call(ME, "workspace.stat", {"path": f"/videos/{title}.json"})).value
    except Exception:  # noqa: BLE001 - absent or in the trash: the test only asks whether it is there
        return None


async def test_the_video_pipeline_runs_every_step_once(hub: Hub, media: tuple[Media, str]) -> None:
    server, _ = media
    result = await hub.call(ME, "pipelines.video", {"url": "https://videos.example/cat.mov", "title": "cat"})
    assert result.value["state"] == "succeeded"
    assert result.value["output"]["file"] == "/videos/cat.json"
    assert server.state() == {"live": dict.fromkeys(KINDS, 1), "applied": dict.fromkeys(KINDS, 1)}
    assert (await stored_file(hub, "cat"))["version"] == 1


@pytest.mark.parametrize("failing", STEPS)
async def test_a_failure_at_each_step_undoes_the_steps_before_it(
    hub: Hub, media: tuple[Media, str], failing: str
) -> None:
    server, _ = media
    kind = {"00.download": "downloads", "01.transform": "transcodes", "03.record": "records"}.get(failing)
    if kind is not None:
        server.failing[kind] = 1
    elif failing == "04.notify":
        server.failing["notifications"] = 1
    else:  # the upload refuses to overwrite a file that is already there
        await hub.call(ME, "workspace.write", {"path": "/videos/dog.json", "content": "someone else's"})
    with pytest.raises(ToolExecutionError, match=rf"ended failed at step {failing}.*undone"):
        await hub.call(ME, "pipelines.video", {"url": "https://videos.example/dog.mov", "title": "dog"})
    assert server.state()["live"] == dict.fromkeys(KINDS, 0)
    stored = await stored_file(hub, "dog")
    if failing == "02.upload":
        assert stored["version"] == 1  # the file that was there is left alone
    else:
        assert stored is None
    (run,) = await service_of(hub).store.runs()
    steps = {s.key: s.state for s in await service_of(hub).store.steps(run.id)}
    before = STEPS[: STEPS.index(failing)]
    assert all(steps[k] == "compensated" for k in before) and steps[failing] == "failed"


def worker(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a worker process to its end; one that hangs fails the test with its log (``_worker_proc``)."""
    command = [sys.executable, "-m", "tests.pipelines._worker_proc", str(config), *args]
    limit = patience(120)
    try:
        return subprocess.run(
            [*command, "--report-after", str(limit / 2)],
            capture_output=True,
            text=True,
            timeout=limit,
            cwd=Path(__file__).parents[2],
        )
    except subprocess.TimeoutExpired as exc:
        log = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"worker {' '.join(args)} did not finish in {limit:.0f} s; its log:\n{log[-20_000:]}")


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("phase", ["started", "called", "noted"])
async def test_a_worker_killed_at_each_step_leaves_a_run_that_completes_exactly_once(
    config: Path, media: tuple[Media, str], step: str, phase: str
) -> None:
    server, _ = media
    async with Hub.from_file(config) as hub:
        service = service_of(hub)
        service.inline = False  # leave it to the worker processes
        run = await service.start(
            "video", ME, {"url": "https://v.example/a.mov", "title": "a"}, request_id="t"
        )
    killed = worker(config, "--crash", f"{phase}:{step}")
    assert killed.returncode == -9, killed.stderr
    done = worker(config, "--until", run.id)
    assert done.returncode == 0, done.stderr
    async with Hub.from_file(config) as hub:
        ended = await service_of(hub).store.get(run.id)
        assert ended is not None and ended.state == "succeeded", ended
        assert (await stored_file(hub, "a"))["version"] == 1  # written once
    assert server.state() == {"live": dict.fromkeys(KINDS, 1), "applied": dict.fromkeys(KINDS, 1)}


async def test_a_worker_killed_while_the_upstream_holds_its_request_resumes_with_the_same_key(
    config: Path, media: tuple[Media, str]
) -> None:
    server, url = media
    async with Hub.from_file(config) as hub:
        service = service_of(hub)
        service.inline = False
        run = await service.start(
            "video", ME, {"url": "https://v.example/b.mov", "title": "b"}, request_id="t"
        )
    httpx2.post(f"{url}/_hold", json={"kind": "records"}, trust_env=False)
    process = await anyio.open_process(
        [sys.executable, "-m", "tests.pipelines._worker_proc", str(config)],
        cwd=Path(__file__).parents[2],
        stdout=None,  # not a pipe nobody reads: its log goes to the test's captured output
        stderr=None,
    )
    try:
        assert await anyio.to_thread.run_sync(server.held.wait, patience(60))  # the effect is applied
    finally:
        process.kill()  # SIGKILL, mid-request
        with anyio.fail_after(patience(15)):
            await process.wait()
        server.release.set()
    done = worker(config, "--until", run.id)
    assert done.returncode == 0, done.stderr
    assert server.state() == {"live": dict.fromkeys(KINDS, 1), "applied": dict.fromkeys(KINDS, 1)}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_on_postgresql_never_run_a_step_twice(
    config: Path, media: tuple[Media, str]
) -> None:
    server, _ = media
    count = 12
    async with Hub.from_file(config) as hub:
        service = service_of(hub)
        service.inline = False
        runs = [
            await service.start(
                "video", ME, {"url": f"https://v.example/{i}", "title": f"t{i}"}, request_id="t"
            )
            for i in range(count)
        ]
    procs = [
        await anyio.open_process(
            [sys.executable, "-m", "tests.pipelines._worker_proc", str(config), "--until", runs[-1].id],
            cwd=Path(__file__).parents[2],
            stdout=None,  # not a pipe nobody reads: its log goes to the test's captured output
            stderr=None,
        )
        for _ in range(2)
    ]
    with anyio.fail_after(patience(180)):
        for proc in procs:
            assert await proc.wait() == 0
    async with Hub.from_file(config) as hub:
        service = service_of(hub)
        for run in runs:
            ended = await service.wait(run.id, patience(60))
            assert ended.state == "succeeded"
            assert {s.attempts for s in await service.store.steps(run.id)} == {1}  # no step ran twice
    assert server.state() == {"live": dict.fromkeys(KINDS, count), "applied": dict.fromkeys(KINDS, count)}
