"""Pipelines: durable multi-step workflows of tool calls with checks, retries and compensation
(docs/patterns.md, "Pipelines")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolbridge._lazy import lazy_exports

if TYPE_CHECKING:
    from toolbridge.pipelines._config import PipelineSettings, PipelineWorkerSettings
    from toolbridge.pipelines._model import Call, Check, Pipeline, Retry, Step
    from toolbridge.pipelines._service import PipelineService, add_pipelines, pipeline_service
    from toolbridge.pipelines._store import Run, StepRecord
    from toolbridge.pipelines._worker import PipelineWorker

__all__ = [
    "Call",
    "Check",
    "Pipeline",
    "PipelineService",
    "PipelineSettings",
    "PipelineWorker",
    "PipelineWorkerSettings",
    "Retry",
    "Run",
    "Step",
    "StepRecord",
    "add_pipelines",
    "pipeline_service",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "toolbridge.pipelines._config",
        "toolbridge.pipelines._model",
        "toolbridge.pipelines._service",
        "toolbridge.pipelines._store",
        "toolbridge.pipelines._worker",
    ],
    __all__,
    globals(),
)
