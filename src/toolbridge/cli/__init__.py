"""The ``toolbridge`` command. The only package that reads the environment (``TOOLBRIDGE_*``).

``app`` is the Typer application (the commands of :mod:`toolbridge.cli._app`, with the heavier groups
imported on first use, see ``_lazy``); ``main`` is the console entry point.
"""

from __future__ import annotations

from toolbridge.cli._app import app, main

__all__ = ["app", "main"]
