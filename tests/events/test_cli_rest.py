"""The CLI (events tail|show|replay, hooks list|test) and /v1/events over REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolbridge.cli import app
from toolbridge.events._tools import fit_page

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


@pytest.mark.anyio
async def test_a_page_over_the_result_cap_comes_back_whole_and_shorter(env: Env) -> None:
    """Realistic payloads (GitHub pushes run to tens of KiB) made a page larger than the hub's result cap
    (64 KiB): GET /v1/events answered 500 and events.poll over MCP gave cut-off JSON with no cursor, so a
    reader could never get past them (found by an outside probe: limit=500 after 200 events). The page
    now keeps the events that fit and a cursor after the last; an event too large alone comes without its
    payload; paging reads every event once."""
    watcher = await env.hub.agents.create("watcher", ["events.*"])
    auth = {"Authorization": f"Bearer {watcher}"}
    start = (await env.client.get("/v1/events", params={"subscription": "pushes"}, headers=auth)).json()
    sizes = [1_800] * 50  # the source takes 2 KiB bodies: 50 make a page of about 100 KiB
    for n, size in enumerate(sizes):
        body = json.dumps(
            {"ref": "refs/heads/main", "repository": {"full_name": f"o/r{n}"}, "pad": "x" * size}
        )
        answer = await env.client.post("/hooks/github", content=body, headers=github(body.encode(), f"d-{n}"))
        assert answer.status_code == 200
    cursor, seen, pages = start["cursor"], [], 0
    while True:
        page = await env.client.get(
            "/v1/events", params={"subscription": "pushes", "cursor": cursor, "limit": 500}, headers=auth
        )
        assert page.status_code == 200, page.text[:200]
        assert len(page.content) <= env.hub.limits.max_result_bytes
        if not page.json()["events"]:
            break
        pages += 1
        seen += page.json()["events"]
        cursor = page.json()["cursor"]
    assert [e["subject"] for e in seen] == [f"o/r{n}" for n in range(len(sizes))] and pages >= 2
    assert all(e["payload"]["pad"] for e in seen)


def test_an_event_too_large_for_the_cap_alone_comes_without_its_payload() -> None:
    events = [
        {"id": f"evt_{n}", "seq": n, "payload": {"pad": "x" * size}} for n, size in enumerate([9, 900, 9])
    ]
    first = fit_page({"events": events, "cursor": 2}, 500)
    assert [e["seq"] for e in first["events"]] == [0] and first["cursor"] == 0
    big = fit_page({"events": events[1:], "cursor": 2}, 500)
    assert [e["seq"] for e in big["events"]] == [1] and big["cursor"] == 1
    assert big["events"][0]["payload"] is None
    assert "toolbridge events show evt_1" in big["events"][0]["payload_omitted"]
    assert fit_page({"events": events[2:], "cursor": 2}, 500) == {"events": events[2:], "cursor": 2}


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
