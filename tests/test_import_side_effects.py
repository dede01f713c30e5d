"""``import toolbridge`` does nothing but import (issue 13, item 6): no fork hooks are registered at
import; they are registered by the objects that need them, once."""

from __future__ import annotations

import json
import subprocess
import sys

from tests._patience import patience

PROBE = """
import json, os
registered = []
real = os.register_at_fork
def register(**hooks):  # the standard library's own (random, threading, logging) are not ours
    real(**hooks)
    registered.extend(h for h in hooks.values() if h.__module__.startswith("toolbridge"))
os.register_at_fork = register
import toolbridge, toolbridge.hub, toolbridge.cli, toolbridge.surfaces.app, toolbridge.surfaces.mcp
import toolbridge.surfaces.mcp._wire as wire
after_import = len(registered)
toolbridge.Hub(), toolbridge.Hub(), wire.RequestIds(), wire.RequestIds()
print(json.dumps([after_import, len(registered)]))
"""


def test_importing_registers_no_fork_hook_and_the_objects_that_need_one_register_it_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=patience(300), check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, 2]
