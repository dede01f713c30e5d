"""The workspace's value objects (frozen; the service returns them, surfaces render them)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "Change",
    "ChangePage",
    "Entry",
    "Lease",
    "Member",
    "Role",
    "Version",
    "WorkspaceInfo",
    "etag_of",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Role(enum.IntEnum):
    """What a member may do; each role includes the ones below it."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3
    OWNER = 4

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}; choose owner, admin, editor or viewer") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class WorkspaceInfo:
    id: str
    name: str
    role: Role
    quota_bytes: int | None
    used_bytes: int


@dataclass(frozen=True, slots=True)
class Member:
    principal: str
    role: Role


def etag_of(sha256: str, version: int) -> str:
    """A strong ETag: changes with every write, even one that stores the same bytes again."""
    return f'"{sha256[:32]}-{version}"'


@dataclass(frozen=True, slots=True)
class Entry:
    """A file or folder as ``stat``/``list`` see it."""

    path: str
    kind: Literal["file", "folder"]
    id: str = ""
    version: int = 0
    size: int = 0
    sha256: str = ""
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    updated_at: float = 0.0
    updated_by: str = ""
    trashed: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.sha256, self.version) if self.kind == "file" else ""


@dataclass(frozen=True, slots=True)
class Version:
    version: int
    size: int
    sha256: str
    created_at: float
    created_by: str


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease. ``token`` is the secret the holder presents on writes, heartbeats and release."""

    path: str
    token: str
    fence: int
    holder: str
    expires_at: float
    ttl: float


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    kind: str
    path: str
    principal: str
    at: float
    detail: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ChangePage:
    changes: tuple[Change, ...]
    cursor: int
    """Pass this back to get the changes after these."""
