"""Settings → the pipeline service of a hub (built last: its checks need every other connector's tools)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from toolbridge.pipelines._config import compile_pipeline
from toolbridge.pipelines._service import POLICY, PipelineService

if TYPE_CHECKING:
    from toolbridge.hub import Hub
    from toolbridge.settings import Settings

__all__ = ["build_pipelines", "yaml_lines"]


def build_pipelines(settings: Settings, hub: Hub, *, inline: bool = True) -> PipelineService:
    lines = yaml_lines(settings.text)
    file = str(settings.source) if settings.source else "<toolbridge.yaml>"
    pipelines = [compile_pipeline(name, p, file=file, lines=lines) for name, p in settings.pipelines.items()]
    service = PipelineService(hub, pipelines, settings=settings.pipeline_worker, lines=lines, inline=inline)
    hub.add_connector(service, policy=POLICY)
    return service


def yaml_lines(text: str | None) -> Any:
    """A function from a key path to its 1-based line in the file's text (None when unknown)."""
    from toolbridge._settings_errors import line_of

    node = None
    if text is not None:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None

    def lines(path: Sequence[Any]) -> int | None:
        return line_of(node, list(path)) if node is not None else None

    return lines
