"""``kind: python`` settings → a :class:`PythonConnector` of the functions the block names."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from toolbridge.catalog import ToolAnnotations
from toolbridge.connectors.python import PythonConnector, import_callable
from toolbridge.errors import ConfigurationError
from toolbridge.settings import PythonConnectorSettings, PythonToolSettings, Settings, located_error

__all__ = ["python_connector"]


def python_connector(name: str, config: PythonConnectorSettings, settings: Settings) -> PythonConnector:
    folder = str(
        (settings.base_dir / config.module_path).resolve() if config.module_path else settings.base_dir
    )
    if folder not in sys.path:
        sys.path.insert(0, folder)
    connector = PythonConnector(name)
    for i, tool in enumerate(config.tools):
        try:
            fn = import_callable(tool.function, folder=folder)
        except ConfigurationError as exc:  # at the file's line: connectors.<name>.tools.<i>.function
            raise located_error(
                settings, ["connectors", name, "tools", i, "function"], exc.message, exc.hint
            ) from exc
        try:
            _add_tool(connector, tool, fn)
        except ConfigurationError as exc:  # its name, or what the function's signature cannot be
            key = "name" if tool.name is not None and "tool name" in exc.message else "function"
            raise located_error(
                settings, ["connectors", name, "tools", i, key], exc.message, exc.hint
            ) from exc
    return connector


def _add_tool(connector: PythonConnector, tool: PythonToolSettings, fn: Callable[..., Any]) -> None:
    annotations = ToolAnnotations(
        read_only=tool.read_only,
        destructive=tool.destructive,
        idempotent=tool.idempotent or tool.read_only,
        open_world=False,
    )
    connector.add(fn, name=tool.name, description=tool.description, annotations=annotations, title=tool.title)
