"""Agent API keys: ``tb_<id>_<secret>``. Only a SHA-256 digest is stored.

The key is 192 bits of randomness, so a fast digest is safe (no password stretching needed); the id
part finds the row without scanning, and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["generate_key", "hash_key", "key_prefix", "keys_equal"]

PREFIX = "tb_"


def generate_key() -> tuple[str, str]:
    """Return ``(key_id, plaintext_key)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(24)}"


def key_prefix(key: str) -> str | None:
    """The key id inside ``key``, or None if it is not shaped like a toolbridge key."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_equal(stored_hash: str, key: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_key(key))
