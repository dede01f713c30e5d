"""What an upstream says about when to come back: ``Retry-After`` and the IETF ``RateLimit`` fields."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimitInfo", "parse_ratelimit", "parse_retry_after"]

_DIGITS = re.compile(r"^\d+$")
_ASCTIME = "%a %b %d %H:%M:%S %Y"
_RFC850 = "%A, %d-%b-%y %H:%M:%S GMT"


def parse_retry_after(value: str | None, *, now: Callable[[], dt.datetime] | None = None) -> float | None:
    """Seconds to wait, from delay-seconds or an HTTP-date in any of its three forms (RFC 9110 §10.2.3).

    Negative, fractional or unparseable values give None (use normal backoff); a past date gives 0.
    Naive dates (asctime) are taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return float(int(text))
    when = _http_date(text)
    if when is None:
        return None
    current = (now or (lambda: dt.datetime.now(dt.UTC)))()
    return max(0.0, (when - current).total_seconds())


def _http_date(text: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        for fmt in (_ASCTIME, _RFC850):
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """One ``RateLimit`` item: ``remaining`` requests left and ``reset`` seconds until the quota resets."""

    policy: str
    remaining: int | None
    reset: float | None


def parse_ratelimit(value: str | None) -> RateLimitInfo | None:
    """Parse ``RateLimit: "default";r=0;t=30`` (draft-ietf-httpapi-ratelimit-headers). Malformed → None."""
    if not value:
        return None
    first = value.split(",")[0].strip()
    parts = [p.strip() for p in first.split(";")]
    if not parts or not parts[0]:
        return None
    params: dict[str, int] = {}
    for part in parts[1:]:
        key, sep, raw = part.partition("=")
        if not sep or not _DIGITS.fullmatch(raw.strip()):
            return None
        params[key.strip()] = int(raw.strip())
    if "r" not in params and "t" not in params:
        return None
    reset = params.get("t")
    return RateLimitInfo(parts[0].strip('"'), params.get("r"), float(reset) if reset is not None else None)
