"""Assembly: settings → objects. The only package that turns configuration into a hub and its parts.

Each module builds one kind of part (``_hub`` the hub and its connectors, ``_credentials`` the credential
manager, ``_openapi`` / ``_mcp`` / ``_workspace`` a connector of that kind, ``_events`` the event service,
``_pipelines`` the pipeline service).
Names are imported on first use, so reading an OpenAPI document does not import the hub or SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolbridge._lazy import lazy_exports

if TYPE_CHECKING:
    from toolbridge.assembly._credentials import build_credentials, default_keys
    from toolbridge.assembly._events import build_events
    from toolbridge.assembly._hub import build_hub

__all__ = ["build_credentials", "build_events", "build_hub", "default_keys"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "toolbridge.assembly._hub",
        "toolbridge.assembly._credentials",
        "toolbridge.assembly._events",
    ],
    __all__,
    globals(),
)
