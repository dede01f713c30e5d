"""Bad pipeline definitions are refused when the hub starts, each with ``file:line``, the key path and a fix;
a run's input is validated like any tool call."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge import Hub
from toolbridge.errors import ConfigFileError, ConfigurationError, InvalidArguments
from toolbridge.pipelines import Pipeline
from toolbridge.policy import Principal

pytestmark = pytest.mark.anyio

TOOLS = """
from typing_extensions import TypedDict


class Made(TypedDict):
    id: int
    name: str


def create(name: str) -> Made:
    return {"id": 1, "name": name}


def remove(id: int) -> dict:
    return {}
"""

HEAD = """\
connectors:
  svc:
    kind: python
    tools:
      - function: pl_tools:create
      - function: pl_tools:remove
pipelines:
"""

GOOD = """\
  make:
    input: {type: object, properties: {title: {type: string}}, required: [title]}
    steps:
      - name: first
        tool: svc.create
        arguments: {name: "${input.title}"}
        compensate: {tool: svc.remove, arguments: {id: "${output.id}"}}
      - name: second
        tool: svc.create
        arguments: {name: "${steps.first.name}"}
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pl_tools.py").write_text(TOOLS)
    config = tmp_path / "toolbridge.yaml"
    config.write_text(HEAD + body + f'server: {{database: "sqlite+aiosqlite:///{tmp_path}/tb.db"}}\n')
    return config


async def start(config: Path) -> None:
    async with Hub.from_file(config):
        pass


async def test_a_good_definition_starts_and_validates_the_input_like_a_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    async with Hub.from_file(write(tmp_path, GOOD)) as hub:
        result = await hub.call(Principal.local("me"), "pipelines.make", {"title": "clip"})
        assert result.value["output"] == {"id": 1, "name": "clip"}
        with pytest.raises(InvalidArguments, match="title"):
            await hub.call(Principal.local("me"), "pipelines.make", {"titel": "clip"})


BAD = [
    (
        "unknown tool",
        """\
  p:
    steps:
      - name: a
        tool: svc.creat
        arguments: {name: x}
""",
        r":11: pipelines\.p\.steps\[0\]\.tool: no tool 'svc\.creat' in the catalog",
        "did you mean 'svc.create'",
    ),
    (
        "missing step",
        """\
  p:
    steps:
      - name: first
        tool: svc.create
        arguments: {name: x}
      - name: second
        tool: svc.create
        arguments: {name: "${steps.frist.name}"}
""",
        r":15: pipelines\.p\.steps\[1\]\.arguments\.name: \$\{steps\.frist\.name\} names no step 'frist'",
        "did you mean 'first'",
    ),
    (
        "later step",
        """\
  p:
    steps:
      - name: first
        tool: svc.create
        arguments: {name: "${steps.second.name}"}
      - name: second
        tool: svc.create
        arguments: {name: x}
""",
        r":12: pipelines\.p\.steps\[0\]\.arguments\.name: .*step 'second', which has not run yet",
        None,
    ),
    (
        "missing field",
        """\
  p:
    steps:
      - name: first
        tool: svc.create
        arguments: {name: x}
      - name: second
        tool: svc.create
        arguments: {name: "${steps.first.nmae}"}
""",
        r":15: .*the output of step 'first' has no field 'nmae'",
        "did you mean 'name'",
    ),
    (
        "type mismatch",
        """\
  p:
    steps:
      - name: first
        tool: svc.create
        arguments: {name: x}
      - name: second
        tool: svc.remove
        arguments: {id: "${steps.first.name}"}
""",
        r":15: pipelines\.p\.steps\[1\]\.arguments\.id: \$\{steps\.first\.name\} is string but the tool "
        r"wants integer",
        "to_number",
    ),
    (
        "unknown argument",
        """\
  p:
    steps:
      - name: first
        tool: svc.create
        arguments: {nam: x}
""",
        r":12: pipelines\.p\.steps\[0\]\.arguments\.nam: not an argument of this tool",
        "did you mean 'name'",
    ),
    (
        "cycle",
        """\
  a:
    steps:
      - {name: call-b, pipeline: b}
  b:
    steps:
      - {name: call-a, pipeline: a}
""",
        r":13: pipelines\.b\.steps\[0\]\.pipeline: pipelines call each other in a cycle: a → b → a",
        None,
    ),
]


@pytest.mark.parametrize(("body", "message", "hint"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_a_bad_definition_is_refused_at_start_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str, hint: str | None
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write(tmp_path, body)
    with pytest.raises(ConfigurationError, match=message) as caught:
        await start(config)
    assert str(config) in caught.value.message
    if hint is not None:
        assert hint in (caught.value.hint or "")


def test_a_template_that_is_not_an_expression_is_refused_when_read(tmp_path: Path) -> None:
    from toolbridge.settings import load_settings

    config = write(tmp_path, GOOD.replace("${input.title}", "${input.[title}"))
    settings = load_settings(config)
    from toolbridge.assembly._pipelines import build_pipelines

    with pytest.raises(
        ConfigurationError, match=r"toolbridge\.yaml:11: pipelines\.make\.steps\[0\]: .*not a valid"
    ):
        build_pipelines(settings, Hub())


def test_a_step_names_exactly_one_target(tmp_path: Path) -> None:
    from toolbridge.settings import load_settings

    with pytest.raises(
        ConfigFileError, match=r":10: pipelines\.p\.steps\.0: .*exactly one of 'tool' or 'pipeline'"
    ):
        load_settings(write(tmp_path, "  p:\n    steps:\n      - {name: a, tool: svc.create, pipeline: q}\n"))


def test_pipelines_build_from_python() -> None:
    p = Pipeline.build("p", [{"name": "a", "tool": "svc.create", "arguments": {"name": "${input.x}"}}])
    assert p.steps[0].tool == "svc.create" and p.steps[0].arguments.render({"input": {"x": 1}}) == {"name": 1}
