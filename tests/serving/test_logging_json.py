"""JSON event lines: parseable, with a UTC timestamp, the event and its fields."""

from __future__ import annotations

import json
import logging

from aidetector.serving.logging_json import JsonFormatter


def test_a_record_becomes_one_json_line() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "cache_unavailable", None, None)
    record.fields = {"operation": "get", "suppressed": 3}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["event"] == "cache_unavailable" and payload["level"] == "warning"
    assert payload["operation"] == "get" and payload["suppressed"] == 3
    assert payload["timestamp"].endswith("+00:00")
