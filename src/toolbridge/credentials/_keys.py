"""Master keys: AES-256 keys that wrap the vault's data keys, from an environment value or a key file.

A key file holds a small keyring — the current key plus, during a rotation, the previous ones — as JSON,
with mode 0600. A file that group or others may read is refused. :class:`KeyFile` re-reads the file when
it changes, so a running server picks up a rotation without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from toolbridge.errors import ConfigurationError

__all__ = ["KeyFile", "KeySource", "Keyring", "MasterKey", "StaticKeys"]

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class MasterKey:
    id: str
    material: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls.from_bytes(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_bytes(cls, material: bytes) -> MasterKey:
        if len(material) != KEY_BYTES:
            raise ConfigurationError(
                f"a master key must be {KEY_BYTES} bytes, this one has {len(material)}",
                hint="create one with 'toolbridge keys init' or: python -c "
                "'import os,base64; print(base64.b64encode(os.urandom(32)).decode())'",
            )
        digest = hashlib.sha256(b"toolbridge master key id\x00" + material).hexdigest()
        return cls(digest[:16], material)

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                "the master key is not valid base64",
                hint="TOOLBRIDGE_MASTER_KEY holds 32 bytes, base64-encoded",
            ) from None
        return cls.from_bytes(material)

    def encoded(self) -> str:
        return base64.b64encode(self.material).decode()


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key new secrets are sealed with, and older keys still accepted for reading."""

    current: MasterKey
    previous: tuple[MasterKey, ...] = ()

    def get(self, key_id: str) -> MasterKey | None:
        if key_id == self.current.id:
            return self.current
        return next((k for k in self.previous if k.id == key_id), None)

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.current.id, *(k.id for k in self.previous))

    def to_json(self) -> str:
        keys = {k.id: k.encoded() for k in (self.current, *self.previous)}
        return json.dumps({"version": 1, "current": self.current.id, "keys": keys}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> Keyring:
        try:
            doc = json.loads(text)
            keys = {kid: MasterKey.from_base64(value) for kid, value in doc["keys"].items()}
            current = keys.pop(doc["current"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"{where} is not a toolbridge key file ({type(exc).__name__})",
                hint="create one with 'toolbridge keys init'",
            ) from None
        return cls(current, tuple(keys.values()))


class KeySource(Protocol):
    """Where the vault gets its keyring; asked on every seal and open (so it must be cheap)."""

    def keyring(self) -> Keyring: ...


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A keyring fixed for the life of the process (from TOOLBRIDGE_MASTER_KEY, or built in tests)."""

    ring: Keyring

    def keyring(self) -> Keyring:
        return self.ring


class KeyFile:
    """A key file on disk (mode 0600), re-read whenever it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._ring: Keyring | None = None

    def keyring(self) -> Keyring:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise ConfigurationError(
                f"the key file {self.path} does not exist", hint="create it with 'toolbridge keys init'"
            ) from None
        marker = (info.st_mtime_ns, info.st_size)
        if self._ring is None or marker != self._seen:
            self._ring = self._load(info)
            self._seen = marker
        return self._ring

    def _load(self, info: os.stat_result) -> Keyring:
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"the key file {self.path} may be read by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):o})",
                hint=f"chmod 600 {self.path}",
            )
        return Keyring.from_json(self.path.read_text(encoding="utf-8"), where=str(self.path))

    def write(self, ring: Keyring) -> None:
        """Replace the file atomically, created with mode 0600."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(ring.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(scratch, self.path)
        self._ring, self._seen = None, None

    def create(self) -> Keyring:
        """Write a new key file; refuse to overwrite one (losing a key loses every secret)."""
        if self.path.exists():
            raise ConfigurationError(
                f"the key file {self.path} already exists", hint="rotate it with 'toolbridge keys rotate'"
            )
        ring = Keyring(MasterKey.generate())
        self.write(ring)
        return ring
