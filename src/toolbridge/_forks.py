"""Fork hooks, registered when first needed and never at import: ``import toolbridge`` does nothing but
import (issue 13, item 6). A forked worker must not repeat its parent's random id prefixes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["reseed_after_fork"]

_registered: set[Callable[[], None]] = set()
_lock = threading.Lock()


def reseed_after_fork(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every child forked from now on (registered once, however often asked)."""
    with _lock:
        if hook in _registered:
            return
        _registered.add(hook)
    os.register_at_fork(after_in_child=hook)
