"""The :class:`Secret` type and secret references (``env:NAME``, ``file:PATH``, ``vault:NAME``).

A reference is resolved at the edge — when the configuration is turned into objects, or when a person
adds a connection — and never written anywhere in plaintext. ``Secret`` masks itself in ``repr``, ``str``
and format strings, so an accidental log line or error message shows ``Secret('***')``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from toolbridge.errors import ConfigurationError

__all__ = ["Secret", "SecretRef", "resolve_reference", "resolve_static"]

_MASK = "Secret('***')"


class Secret:
    """A secret value. ``repr``/``str`` are masked; :meth:`reveal` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


RefKind = Literal["env", "file", "vault"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A pointer to a secret: ``env:NAME``, ``file:PATH`` or ``vault:NAME``."""

    kind: RefKind
    target: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        kind, sep, target = text.partition(":")
        if not sep or kind not in ("env", "file", "vault") or not target:
            raise ConfigurationError(
                f"{_describe(text)} is not a secret reference",
                hint="write 'env:VARIABLE', 'file:/path/to/file' or 'vault:NAME' (never the secret itself)",
            )
        return cls(kind, target)  # type: ignore[arg-type]

    @staticmethod
    def is_reference(text: str) -> bool:
        kind, sep, target = text.partition(":")
        return bool(sep and target) and kind in ("env", "file", "vault")

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


VaultReader = Callable[[str], Awaitable[Secret]]


async def resolve_reference(
    ref: SecretRef | str,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    vault: VaultReader | None = None,
) -> Secret:
    """The secret a reference points at. Errors name the reference, never a value."""
    ref = SecretRef.parse(ref) if isinstance(ref, str) else ref
    if ref.kind != "vault":
        return resolve_static(ref, environ=environ, base_dir=base_dir)
    if vault is None:
        raise ConfigurationError(
            f"secret reference {ref} needs the vault, which is not configured",
            hint="set TOOLBRIDGE_MASTER_KEY or create a key file with 'toolbridge keys init'",
        )
    return await vault(ref.target)


def resolve_static(
    ref: SecretRef, *, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Secret:
    """Resolve an ``env:`` or ``file:`` reference (``vault:`` needs :func:`resolve_reference`)."""
    if ref.kind == "env":
        env = os.environ if environ is None else environ
        value = env.get(ref.target)
        if value is None:
            raise ConfigurationError(
                f"secret reference {ref} names an environment variable that is not set",
                hint=f"export {ref.target}=... before starting toolbridge",
            )
        return Secret(value)
    if ref.kind == "file":
        return Secret(_read_file(ref, base_dir))
    raise ConfigurationError(f"secret reference {ref} needs the vault here", hint="use env: or file:")


def _read_file(ref: SecretRef, base_dir: Path | None) -> str:
    path = Path(ref.target).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(
            f"secret reference {ref} cannot be read: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None


def _describe(text: str) -> str:
    """Name a bad reference without echoing what may be a pasted secret."""
    kind = text.partition(":")[0]
    return f"{kind!r}-prefixed value" if ":" in text and len(kind) < 12 else "the value given"
