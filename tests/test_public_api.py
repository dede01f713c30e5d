"""The public surface of the package is deliberate: sorted, complete, importable."""

import importlib

import pytest

import toolbridge

PACKAGES = [
    "toolbridge",
    "toolbridge.catalog",
    "toolbridge.policy",
    "toolbridge.storage",
    "toolbridge.assembly",
    "toolbridge.audit",
    "toolbridge.cli",
    "toolbridge.connectors",
    "toolbridge.connectors.mcp",
    "toolbridge.connectors.openapi",
    "toolbridge.connectors.python",
    "toolbridge.surfaces.rest",
    "toolbridge.errors",
    "toolbridge.events",
    "toolbridge.pipelines",
    "toolbridge.testing",
    "toolbridge.router",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for member in module.__all__:
        assert getattr(module, member) is not None


def test_top_level_names() -> None:
    assert {"Hub", "Client", "Principal", "Tool", "CallResult", "ToolbridgeError", "ToolNotFound"} <= set(
        toolbridge.__all__
    )


def test_every_error_derives_from_the_root() -> None:
    from toolbridge import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.ToolbridgeError), name
