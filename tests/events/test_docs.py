"""docs/events.md: its configuration blocks load, its GitHub example works as written, its commands exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from typer.testing import CliRunner

from toolbridge import Hub
from toolbridge.cli import app
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

DOC = Path(__file__).parents[2] / "docs" / "events.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_every_configuration_block_loads() -> None:
    loaded = [parse_settings(block) for block in blocks("yaml")]
    assert {"github", "billing"} <= {name for s in loaded for name in s.hooks}
    assert {"new-issues", "incidents", "mirror-pushes", "ticket-per-issue"} <= {
        name for s in loaded for name in s.subscriptions
    }
    assert {"new-incidents"} <= {name for s in loaded for name in s.triggers}


def test_the_github_example_as_written(in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "a" * 64)
    (in_tmp_dir / "toolbridge.yaml").write_text(blocks("yaml")[0])
    commands = [line for line in blocks("sh")[0].splitlines() if line.startswith("toolbridge hooks test")]
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0 and result.output.startswith("200"), result.output
    tail = runner.invoke(app, ["events", "tail", "--json"])
    (event,) = [json.loads(line) for line in tail.output.splitlines()]
    assert (event["type"], event["subject"]) == ("issues.opened", "me/repo")
    # the agent's read, as written: its key from the doc's command, then its curl's URL (it named a
    # $TRIAGE_KEY made nowhere, and without cursor=0 it waited 30 s for events after the one just sent)
    reader = blocks("sh")[1]
    create = re.search(r"\$\(toolbridge ([^)]*)\)", reader)
    assert create is not None, reader
    created = CliRunner().invoke(app, shlex.split(create.group(1)))
    key = created.stdout.strip().splitlines()[-1]
    url = re.search(r'"http://127\.0\.0\.1:8080(/v1/events\?[^"]*)"', reader)
    assert url is not None and key.startswith("tb_"), (reader, created.output)
    page = anyio.run(_read_as_agent, key, url.group(1).replace("wait=30", "wait=0"))
    assert [e["type"] for e in page["events"]] == ["issues.opened"] and page["cursor"] == event["seq"]


async def _read_as_agent(key: str, path: str) -> Any:
    hub = Hub.from_file("toolbridge.yaml")
    application = create_app(hub)
    async with application.router.lifespan_context(application):
        transport = httpx2.ASGITransport(app=application)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_commands_in_the_doc_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    commands = set(re.findall(r"toolbridge ((?:events|hooks|subscriptions) \w+)", text))
    assert commands == {
        "events tail", "events show", "events replay", "hooks list", "hooks test", "subscriptions list",
        "subscriptions enable",
    }  # fmt: skip
    for command in commands:
        result = CliRunner().invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, result.output
