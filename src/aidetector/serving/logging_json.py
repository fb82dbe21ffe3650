"""Structured logs: one JSON object per line on stdout, and rate-limited warnings.

BentoML's own logs are plain text, so the service writes its events through a separate
logger that does not propagate to them. A plain StreamHandler is used on purpose:
rotating file handlers break when BentoML forks workers. The JSON rendering is
python-json-logger's (a BentoML dependency, pinned in requirements.txt).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from datetime import datetime
from typing import Any

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter as LibraryJsonFormatter

LOGGER_NAME = "aidetector.events"


class JsonFormatter(LibraryJsonFormatter):
    """One compact JSON line per record: timestamp, level, event, then the event's fields.

    The fields travel as one `fields` extra rather than as extras of their own because
    names such as `message` may not be set on a LogRecord.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(message)s",
            rename_fields={"levelname": "level", "message": "event"},
            timestamp=True,
            json_serializer=functools.partial(json.dumps, separators=(",", ":")),
        )

    def process_log_record(self, log_data: LogData) -> LogData:
        """Put timestamp, level and event first and the event's fields at the top level."""
        stamp: datetime = log_data.pop("timestamp")
        fields = log_data.pop("fields", None) or {}
        return {
            "timestamp": stamp.isoformat(timespec="milliseconds"),
            "level": str(log_data.pop("level")).lower(),
            "event": log_data.pop("event"),
            **log_data,
            **fields,
        }


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
