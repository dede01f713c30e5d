"""What an event is, and the filter subscriptions match events with."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolbridge.events._verify import dig

__all__ = ["Event", "EventFilter", "NewEvent"]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event before it is recorded. ``delivery_id`` (inbound webhooks) deduplicates per source.

    ``stream`` and ``stream_seq``: an ordered part of the log with its own numbering, kept by its one
    writer (a workspace's change feed: ``workspace:<id>``, numbered under the workspace's row lock, so a
    stream's numbers become visible in order and without gaps, unlike the log's ``seq``)."""

    source: str
    type: str
    subject: str | None = None
    payload: Any = None
    delivery_id: str | None = None
    stream: str | None = None
    stream_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A recorded event: ``seq`` orders the log (cursors are seqs), ``id`` names it for good."""

    seq: int
    id: str
    source: str
    type: str
    subject: str | None
    time: dt.datetime
    payload: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.isoformat(timespec="milliseconds"),
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Globs on source, type and subject, and payload fields (dotted paths) that must equal values."""

    source: str | None = None
    type: str | None = None
    subject: str | None = None
    where: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, event: Event | NewEvent) -> bool:
        for pattern, value in (
            (self.source, event.source),
            (self.type, event.type),
            (self.subject, event.subject),
        ):
            if pattern is not None and (value is None or not fnmatch.fnmatchcase(value, pattern)):
                return False
        return all(dig(event.payload, path) == want for path, want in self.where.items())
