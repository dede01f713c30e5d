"""The router: capabilities — operations agents call by name — served by the first provider that can.

See docs/patterns.md ("Router") and ``capabilities:`` in ``toolbridge.yaml``. Names are imported on first
use: reading the settings (which name ``CapabilitySettings``) does not load JMESPath or jsonschema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolbridge._lazy import lazy_exports

if TYPE_CHECKING:
    from toolbridge.router._build import build_router
    from toolbridge.router._describe import Planned, capability_documents, find_router, plan
    from toolbridge.router._mapping import Argument, ArgumentMapping
    from toolbridge.router._model import Capability, Choice, Provider
    from toolbridge.router._router import ROUTER_POLICY, Router, RouterHub
    from toolbridge.router._settings import CapabilitySettings, ProviderSettings

__all__ = [
    "Argument",
    "ArgumentMapping",
    "Capability",
    "CapabilitySettings",
    "Choice",
    "Planned",
    "Provider",
    "ProviderSettings",
    "ROUTER_POLICY",
    "Router",
    "RouterHub",
    "build_router",
    "capability_documents",
    "find_router",
    "plan",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "toolbridge.router._settings",
        "toolbridge.router._model",
        "toolbridge.router._mapping",
        "toolbridge.router._router",
        "toolbridge.router._build",
        "toolbridge.router._describe",
    ],
    __all__,
    globals(),
)
