"""Structured logs: one JSON object per line on stdout, and rate-limited warnings.

BentoML's own logs are plain text, so the service writes its events through a separate
logger that does not propagate to them. A plain StreamHandler is used on purpose:
rotating file handlers break when BentoML forks workers.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "aidetector.events"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: timestamp, level, event and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for record."""
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, default=str, separators=(",", ":"))


@functools.cache
def event_logger() -> logging.Logger:
    """Return the JSON event logger, configured once per process."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Write one JSON line with event and fields."""
    event_logger().log(level, event, extra={"fields": fields})


class RateLimitedWarner:
    """Logs a warning at most once per interval; the next one says how many were dropped."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last = float("-inf")
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, event: str, **fields: Any) -> bool:
        """Log event now unless one was logged within the interval; return whether it was."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        log_event(event, logging.WARNING, suppressed=suppressed, **fields)
        return True
