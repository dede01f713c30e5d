"""The admin UI's sessions: a random id in the cookie, everything else in this process's memory.

The cookie carries no key and nothing signed: a session id of 256 random bits, looked up here. The
operator's API key stays in memory (a :class:`Secret`), and every request authenticates it again, so a
key revoked or stripped of the ``*`` scope ends its sessions at their next request. A restart ends every
session (sign in again); with several replicas, a session lives on the replica that made it (pin the
admin UI's clients to one, or sign in on each).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from toolbridge.credentials import Secret

__all__ = ["COOKIE", "Session", "Sessions"]

COOKIE = "toolbridge_admin"
"""The session cookie's name (path ``/admin``)."""


@dataclass
class Session:
    """One browser's session: anonymous (``key`` None: the sign-in form's CSRF token only) or signed in."""

    id: str
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    key: Secret | None = None
    who: str = ""
    """The signed-in principal's id, as shown in the page's header."""


class Sessions:
    """Sessions by id, each ending ``lifetime`` seconds after sign-in (anonymous ones after
    ``anonymous_lifetime``). At most ``capacity`` of each kind are kept, the oldest dropped first: the
    anonymous ones apart, so that anybody opening the sign-in page many times drops only those, never
    a signed-in operator's session."""

    def __init__(
        self,
        *,
        lifetime: float = 8 * 3600,
        anonymous_lifetime: float = 3600,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.anonymous_lifetime = anonymous_lifetime
        self.capacity = capacity
        self.clock = clock
        self._signed: OrderedDict[str, Session] = OrderedDict()
        self._anonymous: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._signed) + len(self._anonymous)

    def get(self, ident: str | None) -> Session | None:
        """The live session ``ident`` names (an expired one is forgotten)."""
        if not ident:
            return None
        for kind in (self._signed, self._anonymous):
            session = kind.get(ident)
            if session is not None and session.expires <= self.clock():
                del kind[ident]
                return None
            if session is not None:
                return session
        return None

    def anonymous(self) -> Session:
        """A new session for the sign-in form."""
        session = Session(secrets.token_urlsafe(32), self.clock() + self.anonymous_lifetime)
        return self._add(self._anonymous, session)

    def sign_in(self, previous: Session, key: str, who: str) -> Session:
        """A new session (a new id and CSRF token) for ``who`` signed in with ``key``; ``previous``, the
        anonymous one, ends (an id known before sign-in is never one that is signed in)."""
        self.end(previous.id)
        session = Session(secrets.token_urlsafe(32), self.clock() + self.lifetime, key=Secret(key), who=who)
        return self._add(self._signed, session)

    def end(self, ident: str) -> None:
        self._signed.pop(ident, None)
        self._anonymous.pop(ident, None)

    def _add(self, kind: OrderedDict[str, Session], session: Session) -> Session:
        kind[session.id] = session
        while len(kind) > self.capacity:
            kind.popitem(last=False)
        return session
