"""The native-SDK approach at its simplest: Python callables as tools."""

from toolbridge.connectors.python._connector import PythonConnector, import_callable

__all__ = ["PythonConnector", "import_callable"]
