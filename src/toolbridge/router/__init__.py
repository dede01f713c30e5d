"""The router: capabilities — operations agents call by name — served by the first provider that can.

See docs/patterns.md ("Router") and ``capabilities:`` in ``toolbridge.yaml``.
"""

from toolbridge.router._build import build_router
from toolbridge.router._mapping import ArgumentMapping, Expression
from toolbridge.router._model import Capability, Choice, Provider
from toolbridge.router._router import ROUTER_POLICY, Router, RouterHub

__all__ = [
    "ROUTER_POLICY",
    "ArgumentMapping",
    "Capability",
    "Choice",
    "Expression",
    "Provider",
    "Router",
    "RouterHub",
    "build_router",
]
