"""A call in progress as the hub's failure path needs to know it, and request ids."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolbridge.catalog import Tool
    from toolbridge.connectors import Credentials
    from toolbridge.policy import Principal

__all__ = ["Pending", "new_request_id", "reseed_ids"]


@dataclass(slots=True)
class Pending:
    """One call in progress, as the failure path needs to know it."""

    principal: Principal
    tool: str
    args: Mapping[str, Any]
    key: str | None
    request_id: str
    started: float
    from_outbox: bool
    delegated: bool = False
    digest: str = ""
    target: Tool | None = None
    claimed: bool = False
    credentials: Credentials | None = None
    timeout: float = 60.0
    """Seconds the call may take (``call_timeout``, or less for a step of a call with its own deadline)."""

    @property
    def writes(self) -> bool:
        """Whether the call's tool may change something (its answer waits for its audit row)."""
        return self.target is not None and not self.target.annotations.read_only

    @property
    def secrets(self) -> Sequence[str]:
        """The forms of the call's secret values, read when redacting: a refresh during the call (after an
        upstream 401) adds the new tokens, which the retried request carried and an upstream may echo."""
        found: Sequence[str] = getattr(self.credentials, "secrets", ())
        return found


_ID_PREFIX = secrets.token_hex(4)
_ID_COUNT = itertools.count(1)


def reseed_ids() -> None:  # a forked worker must not repeat its parent's ids
    global _ID_PREFIX, _ID_COUNT
    _ID_PREFIX, _ID_COUNT = secrets.token_hex(4), itertools.count(1)


def new_request_id() -> str:
    """A request id for a call whose caller gave none: unique per process by its random prefix, no
    system call per call (ids identify, they authorize nothing)."""
    return f"{_ID_PREFIX}{next(_ID_COUNT):08x}"
