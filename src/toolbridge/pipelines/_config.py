"""The ``pipelines:`` section of toolbridge.yaml (pydantic, the wire edge) and its compilation to values.

Structure is checked when the file is read (an unknown key or a wrong type names its line like any other
setting); what needs the catalog — tools, templates, types — is checked by :mod:`._check` at start.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from toolbridge._template import compile_template, expression
from toolbridge.errors import ConfigurationError
from toolbridge.pipelines._model import Call, Check, Pipeline, Retry, Step, Where, predicates

__all__ = ["PipelineSettings", "PipelineWorkerSettings", "compile_pipeline"]

_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Model):
    attempts: Annotated[int, Field(ge=1, le=20)] = 3
    """Attempts in all (the first included), for failures that are safe to repeat and that the connector's
    resilience policy did not retry already (a step's timeout; a connector with ``max_attempts: 1``)."""
    base_delay: Annotated[float, Field(ge=0)] = 0.5
    max_delay: Annotated[float, Field(ge=0)] = 30.0


class CheckSettings(_Model):
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    """A JSON Schema the step's output must match."""
    require: list[str] = []
    """JMESPath predicates that must be truthy, such as "output.bytes > `0`"."""


class CallSettings(_Model):
    tool: str
    arguments: dict[str, Any] = {}


class StepSettings(_Model):
    name: Annotated[str, Field(pattern=_NAME)]
    tool: str | None = None
    pipeline: str | None = None
    arguments: dict[str, Any] = {}
    when: str | None = None
    """A JMESPath condition: the step is skipped (its output null) when it is falsy."""
    for_each: str | None = None
    """A JMESPath expression giving a list: the step runs once per element (``item``, ``index``)."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    check: CheckSettings = CheckSettings()
    retry: RetrySettings = RetrySettings()
    timeout: Annotated[float | None, Field(gt=0)] = None
    compensate: CallSettings | None = None

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> StepSettings:
        if (self.tool is None) == (self.pipeline is None):
            raise ValueError("a step names exactly one of 'tool' or 'pipeline'")
        return self


class PipelineSettings(_Model):
    description: str = ""
    input: dict[str, Any] = {"type": "object"}
    """The JSON Schema of a run's input (the pipeline tool's input schema)."""
    output: Any = None
    """A template for the run's result; by default the last step's output."""
    steps: Annotated[list[StepSettings], Field(min_length=1)]


class PipelineWorkerSettings(_Model):
    """How runs are executed (docs/patterns.md, "Pipelines")."""

    lease: Annotated[float, Field(gt=0)] = 30.0
    """Seconds a worker holds a run it claimed (renewed every third of it while it works); a run whose
    worker died is resumed by another one after this."""
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    """Runs one worker executes at once."""
    poll_interval: Annotated[float, Field(gt=0)] = 0.5
    """Seconds between an idle worker's looks for due runs (retries that came due, leases that ran out,
    runs queued on SQLite by another process); a run queued in the worker's process, or on PostgreSQL by
    any process, wakes it at once."""
    compensation_attempts: Annotated[int, Field(ge=1, le=50)] = 5
    """Attempts of each compensation call before the run ends ``needs_attention``."""


def compile_pipeline(
    name: str, settings: PipelineSettings, *, file: str = "<python>", lines: Any = None
) -> Pipeline:
    """The value of one definition; ``lines(path)`` gives the line of a key path (None: unknown)."""
    locate = lines or (lambda _path: None)
    names: set[str] = set()
    steps = []
    for i, s in enumerate(settings.steps):
        where = Where(file, locate(["pipelines", name, "steps", i]))
        if s.name in names:
            raise ConfigurationError(
                f"{where}: pipelines.{name}.steps[{i}].name: two steps are named {s.name!r}",
                hint="give each step of a pipeline its own name",
            )
        names.add(s.name)
        steps.append(_located(_step(s), where, f"pipelines.{name}.steps[{i}]"))
    return Pipeline(
        name=name,
        steps=tuple(steps),
        description=settings.description,
        input_schema=settings.input,
        output=compile_template(settings.output) if settings.output is not None else None,
        where=Where(file, locate(["pipelines", name])),
    )


def _located(step: Any, where: Where, path: str) -> Step:
    if isinstance(step, ConfigurationError):
        raise ConfigurationError(f"{where}: {path}: {step.message}", hint=step.hint) from step
    assert isinstance(step, Step)
    return Step(**{**{f: getattr(step, f) for f in Step.__dataclass_fields__}, "where": where})


def _step(s: StepSettings) -> Step | ConfigurationError:
    try:
        return Step(
            name=s.name,
            tool=s.tool,
            pipeline=s.pipeline,
            arguments=compile_template(s.arguments),
            when=expression(s.when) if s.when else None,
            for_each=expression(s.for_each) if s.for_each else None,
            concurrency=s.concurrency,
            check=Check(s.check.schema_, predicates(s.check.require)),
            retry=Retry(s.retry.attempts, s.retry.base_delay, s.retry.max_delay),
            timeout=s.timeout,
            compensate=Call(s.compensate.tool, compile_template(s.compensate.arguments))
            if s.compensate
            else None,
        )
    except ConfigurationError as exc:
        return exc
