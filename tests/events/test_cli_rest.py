"""The CLI (events tail|show|replay, hooks list|test) and /v1/events over REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolbridge.cli import app

from .conftest import GITHUB_SECRET, Env
from .test_hooks import PUSH, github

CONFIG = """
hooks:
  github:
    verifier: github
    secret: env:TB_TEST_GITHUB_SECRET
subscriptions:
  pushes:
    source: github
    type: push
    principals: [watcher]
  mirror:
    type: push
    webhook:
      url: https://hooks.example.com/in
      secret: env:TB_TEST_SW_SECRET
"""


def test_hooks_test_then_events_tail_show_and_replay(
    in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_TEST_GITHUB_SECRET", GITHUB_SECRET)
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    listing = run("hooks", "list", "--json")
    assert {"kind": "source", "name": "github", "detail": "POST /hooks/github", "verifier": "github"} in [
        json.loads(line) for line in listing.splitlines()
    ]
    answer = run(
        "hooks", "test", "github", "--type", "push", "--body", '{"repository": {"full_name": "a/b"}}'
    )
    assert answer.startswith("200") and '"duplicate":false' in answer.replace(" ", "")
    (event,) = [json.loads(line) for line in run("events", "tail", "--json").splitlines()]
    assert (event["source"], event["type"], event["subject"]) == ("github", "push", "a/b")
    shown = json.loads(run("events", "show", event["id"]))
    assert [d["subscription"] for d in shown["deliveries"]] == ["mirror"]  # planned with the event
    assert "planned 1 delivery" in run("events", "replay", event["id"], "--subscription", "mirror")
    assert len(json.loads(run("events", "show", event["id"]))["deliveries"]) == 2
    failed = runner.invoke(app, ["events", "show", "evt_nope"])
    assert failed.exit_code == 1 and "no event 'evt_nope'" in failed.output


def test_hooks_test_with_a_wrong_secret_is_refused(in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TB_TEST_GITHUB_SECRET", GITHUB_SECRET)
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)
    result = CliRunner().invoke(app, ["hooks", "test", "gitlab"])
    assert result.exit_code == 1 and "no webhook source 'gitlab'" in result.output


@pytest.mark.anyio
async def test_rest_events_are_scoped_and_audited(env: Env) -> None:
    watcher = await env.hub.agents.create("watcher", ["events.*"])
    stranger = await env.hub.agents.create("stranger", ["events.*"])
    auth = {"Authorization": f"Bearer {watcher}"}
    subs = await env.client.get("/v1/events/subscriptions", headers=auth)
    assert [s["name"] for s in subs.json()["subscriptions"]] == ["pushes"]
    start = await env.client.get("/v1/events", params={"subscription": "pushes"}, headers=auth)
    await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    page = await env.client.get(
        "/v1/events",
        params={"subscription": "pushes", "cursor": start.json()["cursor"], "wait": 5},
        headers=auth,
    )
    assert [e["subject"] for e in page.json()["events"]] == ["octo/hello"]
    hidden = await env.client.get(
        "/v1/events", params={"subscription": "pushes"}, headers={"Authorization": f"Bearer {stranger}"}
    )
    assert hidden.status_code == 404
    assert (await env.client.get("/v1/events", params={"subscription": "pushes"})).status_code == 401
    paths = (await env.client.get("/v1/openapi.json")).json()["paths"]
    assert {"/events", "/events/subscriptions"} <= set(paths)


def test_subscriptions_list_and_enable_after_a_410(in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    from toolbridge import Hub
    from toolbridge.settings import load_settings

    monkeypatch.setenv("TB_TEST_GITHUB_SECRET", GITHUB_SECRET)
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)

    async def gone() -> None:  # what the worker does when the endpoint answers 410
        hub = Hub.from_settings(load_settings(in_tmp_dir / "toolbridge.yaml"))
        async with hub:
            assert hub.event_service is not None and hub.event_service.deliveries is not None
            await hub.event_service.deliveries.disable(
                "mirror", "https://hooks.example.com answered 410 Gone"
            )

    anyio.run(gone)
    runner = CliRunner()

    def rows() -> dict[str, object]:
        result = runner.invoke(app, ["subscriptions", "list", "--json"])
        assert result.exit_code == 0, result.output
        return {r["name"]: r["disabled"] for r in map(json.loads, result.output.splitlines())}

    assert rows() == {"pushes": None, "mirror": "https://hooks.example.com answered 410 Gone"}
    enabled = runner.invoke(app, ["subscriptions", "enable", "mirror"])
    assert enabled.exit_code == 0 and "enabled again" in enabled.output
    assert rows() == {"pushes": None, "mirror": None}
    assert "was not disabled" in runner.invoke(app, ["subscriptions", "enable", "mirror"]).output
    unknown = runner.invoke(app, ["subscriptions", "enable", "nope"])
    assert unknown.exit_code == 1 and "no subscription 'nope'" in unknown.output
