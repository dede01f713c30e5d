"""Pipelines on every surface, with examples/patterns.yaml (the example docs/patterns.md runs): the CLI
(`toolbridge pipelines list|run|status|cancel|resume`, `worker --once`), REST /v1/runs as an agent, and the
pipeline tool answering with a run id when the run outlives the call deadline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from typer.testing import CliRunner

from tests._patience import patience
from toolbridge import Hub
from toolbridge.cli import app
from toolbridge.hub import Limits
from toolbridge.pipelines import Pipeline, add_pipelines, pipeline_service
from toolbridge.policy import Principal
from toolbridge.surfaces.app import create_app

EXAMPLE = Path(__file__).parents[2] / "examples" / "patterns.yaml"
INPUT = '{"url": "https://videos.example/cat.mov", "title": "cat"}'


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "-c", str(EXAMPLE)])
    return result


def live() -> dict[str, int]:
    state = json.loads((Path(".toolbridge") / "media.json").read_text())
    counts: dict[str, int] = {}
    for item in state["live"].values():
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return counts


def test_the_example_runs_from_the_cli_and_undoes_a_failed_run(in_tmp_dir: Path) -> None:
    listed = cli("pipelines", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert (
        json.loads(listed.output.splitlines()[0])["steps"]
        == "download → transform → upload → record → notify"
    )
    ran = cli("pipelines", "run", "video", INPUT)
    assert ran.exit_code == 0, ran.output
    document = json.loads(ran.output)
    assert document["state"] == "succeeded" and document["output"]["file"] == "/videos/cat.json"
    failed = cli("pipelines", "run", "video", '{"url": "https://videos.example/x.mov", "title": "fail"}')
    assert failed.exit_code != 0 and "ended failed at step 04.notify" in failed.output
    assert live() == {"download": 1, "transcode": 1, "record": 1, "notification": 1}  # only the first run
    run_id = failed.output.split("pipeline run ", 1)[1].split()[0]
    status = json.loads(cli("pipelines", "status", run_id).output)
    assert [s["state"] for s in status["steps"]] == ["compensated"] * 4 + ["failed"]


def test_a_run_left_to_the_worker_is_executed_by_worker_once(in_tmp_dir: Path) -> None:
    queued = cli("pipelines", "run", "video", INPUT, "--no-wait")
    assert queued.exit_code == 0, queued.output
    run_id = json.loads(queued.output)["run_id"]
    assert json.loads(cli("pipelines", "status", run_id).output)["state"] == "queued"
    worked = cli("worker", "--once")
    assert worked.exit_code == 0, worked.output
    assert json.loads(cli("pipelines", "status", run_id).output)["state"] == "succeeded"
    runs = cli("pipelines", "list", "--runs", "--json").output.splitlines()
    assert [json.loads(r)["run_id"] for r in runs] == [run_id]
    table = cli("pipelines", "list", "--runs").output  # the table showed run, created, updated blank
    assert run_id in table and json.loads(runs[0])["created_at"][:10] in table


def test_cancel_and_resume_from_the_cli(in_tmp_dir: Path) -> None:
    queued = json.loads(cli("pipelines", "run", "video", INPUT, "--no-wait").output)
    cancelled = cli("pipelines", "cancel", queued["run_id"])
    assert cancelled.exit_code == 0 and json.loads(cancelled.output)["cancel_requested"] is True
    resumed = json.loads(cli("pipelines", "resume", queued["run_id"]).output)
    assert resumed["state"] == "cancelled"
    assert not (Path(".toolbridge") / "media.json").exists() or live() == {}
    unknown = cli("pipelines", "status", "nope")
    assert unknown.exit_code != 0 and "no pipeline run 'nope'" in unknown.output


def test_a_signed_upload_notice_starts_the_example_pipeline(
    in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/patterns.md, "Event-driven": the example's webhook source and subscription, from the CLI."""
    monkeypatch.setenv("UPLOADS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = '{"type": "video.uploaded", "url": "https://videos.example/dog.mov", "slug": "dog"}'
    received = cli("hooks", "test", "uploads", "--body", body)
    assert received.exit_code == 0 and received.output.startswith("200 "), received.output
    assert cli("pipelines", "list", "--runs", "--json").output.strip() == ""  # recorded, not yet delivered
    worked = cli("worker", "--once")
    assert worked.exit_code == 0, worked.output
    (run,) = [json.loads(r) for r in cli("pipelines", "list", "--runs", "--json").output.splitlines()]
    assert (run["pipeline"], run["state"]) == ("video", "succeeded")
    assert live() == {"download": 1, "transcode": 1, "record": 1, "notification": 1}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Hub, httpx2.AsyncClient, str, anyio.Event]]:
    gate = anyio.Event()
    hub = Hub(
        database=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", limits=Limits(call_timeout=patience(3.0))
    )

    @hub.tool(connector="svc", idempotent=True)
    def stamp(text: str) -> dict[str, Any]:
        return {"text": text.upper()}

    @hub.tool(connector="svc", read_only=True)
    async def slow(ready: bool) -> dict[str, Any]:
        if not ready:
            await gate.wait()
        return {"ready": True}

    add_pipelines(
        hub,
        [
            Pipeline.build(
                "shout",
                [
                    {"name": "wait", "tool": "svc.slow", "arguments": {"ready": "${input.quick}"}},
                    {"name": "stamp", "tool": "svc.stamp", "arguments": {"text": "${input.text}"}},
                ],
                input_schema={
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "quick": {"type": "boolean"}},
                    "required": ["text", "quick"],
                    "additionalProperties": False,
                },
            )
        ],
    )
    web = create_app(hub)
    async with web.router.lifespan_context(web):
        key = await hub.agents.create("producer", ["pipelines.*"])
        transport = httpx2.ASGITransport(app=web)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.headers["Authorization"] = f"Bearer {key}"
            yield hub, http, key, gate


@pytest.mark.anyio
async def test_rest_runs_start_read_list_and_keep_runs_private(
    served: tuple[Hub, httpx2.AsyncClient, str, anyio.Event],
) -> None:
    hub, http, _, _ = served
    started = await http.post("/v1/runs", json={"pipeline": "shout", "input": {"text": "hi", "quick": True}})
    assert started.status_code == 200, started.text
    assert started.json()["output"] == {"text": "HI"}
    run_id = started.json()["run_id"]
    one = await http.get(f"/v1/runs/{run_id}")
    assert one.json()["state"] == "succeeded" and [s["key"] for s in one.json()["steps"]] == [
        "00.wait",
        "01.stamp",
    ]
    assert [r["run_id"] for r in (await http.get("/v1/runs")).json()["runs"]] == [run_id]
    bad = await http.post("/v1/runs", json={"pipeline": "shout", "input": {"txt": "hi", "quick": True}})
    assert bad.status_code == 422 and "txt" in bad.text  # validated like any tool call
    other = await hub.agents.create("someone", ["pipelines.*"])
    hidden = await http.get(f"/v1/runs/{run_id}", headers={"Authorization": f"Bearer {other}"})
    assert hidden.status_code == 404
    cancel = await http.post(f"/v1/runs/{run_id}/cancel", headers={"Authorization": f"Bearer {other}"})
    assert cancel.status_code == 404


@pytest.mark.anyio
async def test_a_run_that_outlives_the_call_deadline_answers_with_its_id(
    served: tuple[Hub, httpx2.AsyncClient, str, anyio.Event],
) -> None:
    hub, http, _, gate = served
    started = await http.post(
        "/v1/runs", json={"pipeline": "shout", "input": {"text": "late", "quick": False}}
    )
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running" and "pipelines.status" in started.json()["hint"]
    gate.set()
    run_id = started.json()["run_id"]
    service = pipeline_service(hub)
    assert service is not None
    assert (await service.wait(run_id, patience(10))).state == "succeeded"
    status = await hub.call(Principal.local("op"), "pipelines.status", {"run_id": run_id})
    assert status.value["output"] == {"text": "LATE"}
