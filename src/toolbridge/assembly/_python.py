"""``kind: python`` settings → a :class:`PythonConnector` of the functions the block names."""

from __future__ import annotations

import sys

from toolbridge.catalog import ToolAnnotations
from toolbridge.connectors.python import PythonConnector, import_callable
from toolbridge.errors import ConfigurationError
from toolbridge.settings import PythonConnectorSettings, PythonToolSettings, Settings

__all__ = ["python_connector"]


def python_connector(name: str, config: PythonConnectorSettings, settings: Settings) -> PythonConnector:
    folder = str(
        (settings.base_dir / config.module_path).resolve() if config.module_path else settings.base_dir
    )
    if folder not in sys.path:
        sys.path.insert(0, folder)
    connector = PythonConnector(name)
    for i, tool in enumerate(config.tools):
        _add_tool(connector, tool, f"connectors.{name}.tools[{i}]")
    return connector


def _add_tool(connector: PythonConnector, tool: PythonToolSettings, where: str) -> None:
    annotations = ToolAnnotations(
        read_only=tool.read_only,
        destructive=tool.destructive,
        idempotent=tool.idempotent or tool.read_only,
        open_world=False,
    )
    try:
        fn = import_callable(tool.function)
        connector.add(
            fn, name=tool.name, description=tool.description, annotations=annotations, title=tool.title
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}", hint=exc.hint) from exc
