"""Public names of a package, imported from their modules on first use.

A package whose modules import heavy libraries (SQLAlchemy, the MCP SDK, cryptography) re-exports its
names through :func:`lazy_exports`, so ``import toolbridge`` — or a command that only reads an OpenAPI
document — does not pay for what it does not use. The package keeps a sorted ``__all__`` and imports the
same names under ``TYPE_CHECKING`` for type checkers; the public-API test checks that each name resolves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Sequence[str], names: Sequence[str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each of ``names`` (its ``__all__``) comes from the
    first of ``modules`` that defines it, imported when the name is first used."""
    public = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in modules:
            value = getattr(importlib.import_module(module), name, _MISSING)
            if value is not _MISSING:
                namespace[name] = value  # resolved once; later lookups are plain attribute reads
                return value
        raise AttributeError(f"module {package!r} lists {name!r} but none of its modules defines it")

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__


_MISSING = object()
