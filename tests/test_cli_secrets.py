"""``toolbridge secrets``: named secrets in the vault for ``vault:NAME`` references. The docs offered
``secret: vault:billing-hook`` for a webhook source, and the error for a missing one said "store it with
'toolbridge secrets set'", a command that did not exist; nor was the vault read without a connection."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from pathlib import Path

import anyio
import httpx2
import pytest
from typer.testing import CliRunner

from toolbridge import Hub
from toolbridge.cli import app
from toolbridge.surfaces.app import create_app

CONFIG = "hooks:\n  gh:\n    verifier: github\n    secret: vault:gh-hook\n"
SECRET = "a-webhook-secret-of-32-bytes-0001"


def words(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def folder(in_tmp_dir: Path) -> Path:
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)
    assert CliRunner().invoke(app, ["keys", "init"]).exit_code == 0
    return in_tmp_dir


def test_set_list_delete_never_show_the_value_and_are_audited(folder: Path) -> None:
    runner = CliRunner()
    stored = runner.invoke(app, ["secrets", "set", "gh-hook"], input=SECRET + "\n")
    assert stored.exit_code == 0 and "vault:gh-hook" in stored.output
    other = runner.invoke(
        app, ["secrets", "set", "other", "--from-env", "TB_TEST_OTHER"], env={"TB_TEST_OTHER": "x"}
    )
    assert other.exit_code == 0, other.output
    listed = runner.invoke(app, ["secrets", "list", "--json"])
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["gh-hook", "other"]
    assert runner.invoke(app, ["secrets", "delete", "other"]).exit_code == 0
    gone = runner.invoke(app, ["secrets", "delete", "other"])
    assert gone.exit_code == 1 and "no secret named 'other'" in gone.output
    audit = runner.invoke(app, ["audit", "tail", "--json"])
    actions = [json.loads(line)["tool"] for line in audit.output.splitlines()]
    assert actions.count("(credentials.secret_set)") == 2 and "(credentials.secret_delete)" in actions
    database = sqlite3.connect(folder / ".toolbridge" / "toolbridge.db")
    dump = "\n".join(database.iterdump())
    assert SECRET not in dump and SECRET not in audit.output + listed.output + stored.output


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["connection:x"], "v", "'connection:x' is not a secret name"),  # the vault's own entries have a ':'
        (["empty"], "", "no value for 'empty' came from standard input"),
    ],
)
def test_bad_names_and_empty_values_are_refused(folder: Path, args: list[str], stdin: str, says: str) -> None:
    refused = CliRunner().invoke(app, ["secrets", "set", *args], input=stdin)
    assert refused.exit_code == 1 and says in words(refused.output)


def test_a_webhook_source_verifies_with_a_vault_secret_without_any_connection(folder: Path) -> None:
    assert CliRunner().invoke(app, ["secrets", "set", "gh-hook"], input=SECRET).exit_code == 0
    body = json.dumps({"repository": {"full_name": "octo/hello"}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push"}

    async def deliver() -> httpx2.Response:
        hub = Hub.from_file(folder / "toolbridge.yaml")
        transport = httpx2.ASGITransport(app=create_app(hub, manage_hub=False))
        async with hub, httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post("/hooks/gh", content=body, headers=headers)

    accepted = anyio.run(deliver)  # the commands above run their own event loop: this test has none
    assert accepted.status_code == 200, accepted.text
