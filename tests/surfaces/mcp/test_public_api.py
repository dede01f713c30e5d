"""The public names of toolbridge.surfaces.mcp."""

from __future__ import annotations

import toolbridge.surfaces.mcp as mcp_surface


def test_public_names_are_sorted_and_exported() -> None:
    assert mcp_surface.__all__ == sorted(mcp_surface.__all__) == ["McpSurface", "serve_stdio"]
    for name in mcp_surface.__all__:
        assert getattr(mcp_surface, name).__module__.startswith("toolbridge.surfaces.mcp.")
