"""Public names of a package, imported from their modules on first use.

A package whose modules import heavy libraries (SQLAlchemy, the MCP SDK, cryptography) re-exports its
names through :func:`lazy_exports`, so ``import toolbridge`` — or a command that only reads an OpenAPI
document — does not pay for what it does not use. The package keeps a sorted ``__all__`` and imports the
same names under ``TYPE_CHECKING`` for type checkers; the public-API test checks that each name resolves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps a module to the names it defines."""
    where = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # resolved once; later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
