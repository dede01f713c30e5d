"""How much the process logs, and where: ``--log-level`` / ``TOOLBRIDGE_LOG_LEVEL`` (the edge's only say).

By default nothing is configured: warnings and errors reach stderr as bare lines through Python's last
resort, as they always did. ``info`` and ``debug`` add a handler to toolbridge's loggers and to httpx2's
(its request lines; API keys in query strings are masked by the credential manager's filter) that writes
each record as one timestamped line to stderr; ``error`` silences warnings. Other libraries' debug records
(SQLAlchemy, aiosqlite, asyncio) stay off: they are noise for an operator and quote statements.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["LOG_LEVELS", "configure_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")
_LOGGERS = ("toolbridge", "httpx2")


class _Stderr(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (a test runner swaps it between invocations)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed stream: logging must never take the process down
            self.handleError(record)


_handler = _Stderr()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def configure_logging(level: str) -> None:
    """Apply ``level`` (one of :data:`LOG_LEVELS`, any case); ``warning`` restores the default."""
    name = level.lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LOG_LEVELS)}")
    verbose = name in ("debug", "info")
    for logger_name in _LOGGERS:
        logger = logging.getLogger(logger_name)
        logger.removeHandler(_handler)
        logger.setLevel(name.upper() if name != "warning" else logging.NOTSET)
        if verbose:
            logger.addHandler(_handler)
            logger.propagate = False  # one line per record, not a second one from a root handler
        else:
            logger.propagate = True
