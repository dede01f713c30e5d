"""Pipelines as values: what a ``pipelines:`` entry of toolbridge.yaml (or Python code) compiles to.

A pipeline is an ordered list of steps. A step calls one tool (or runs another pipeline) with
arguments templated from the run's input and earlier steps' outputs; it may be skipped by a ``when``
condition, repeated ``for_each`` element of a list (at most ``concurrency`` at once), checked after the
call (a JSON Schema and predicates), retried by its policy, bounded by a timeout, and undone by its
``compensate`` call when a later step fails or the run is cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolbridge._template import Expression, Template, compile_template, expression
from toolbridge.errors import ConfigurationError

__all__ = ["Call", "Check", "Pipeline", "Retry", "Step", "Where"]


@dataclass(frozen=True, slots=True)
class Where:
    """Where a definition was written, for errors: ``file:line`` and the key path."""

    file: str = "<python>"
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True, slots=True)
class Retry:
    """Attempts of a step (the first included) for failures that are safe to repeat; full-jitter
    backoff from ``base_delay`` doubling up to ``max_delay`` seconds. A failure the connector's resilience
    policy already retried is not retried again (3 step attempts × 5 of the policy made 15 requests)."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay_cap(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call with templated arguments (a compensation)."""

    tool: str
    arguments: Template = field(default_factory=lambda: compile_template({}))


@dataclass(frozen=True, slots=True)
class Check:
    """What a step's output must satisfy: a JSON Schema and JMESPath predicates that must be truthy
    (each sees ``output`` and the step's context)."""

    schema: Mapping[str, Any] | None = None
    predicates: tuple[Expression, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    tool: str | None = None
    pipeline: str | None = None
    arguments: Template = field(default_factory=lambda: compile_template({}))
    when: Expression | None = None
    for_each: Expression | None = None
    concurrency: int = 4
    check: Check = Check()
    retry: Retry = Retry()
    timeout: float | None = None
    compensate: Call | None = None
    where: Where = Where()

    @property
    def target(self) -> str:
        return self.tool or f"pipeline {self.pipeline}"


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    output: Template | None = None
    where: Where = Where()

    @classmethod
    def build(
        cls,
        name: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        description: str = "",
        input_schema: Mapping[str, Any] | None = None,
        output: Any = None,
    ) -> Pipeline:
        """A pipeline from plain data, as in toolbridge.yaml (the Python way to declare one)."""
        from toolbridge.pipelines._config import PipelineSettings, compile_pipeline

        settings = PipelineSettings.model_validate(
            {
                "description": description,
                "input": input_schema or {"type": "object"},
                "steps": list(steps),
                **({"output": output} if output is not None else {}),
            }
        )
        return compile_pipeline(name, settings)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise ConfigurationError(f"pipeline {self.name!r} has no step {name!r}")


def predicates(sources: Sequence[str]) -> tuple[Expression, ...]:
    return tuple(expression(s) for s in sources)
