"""JSON event lines: parseable, with a UTC timestamp, the event and its fields."""

from __future__ import annotations

import json
import logging
import sys

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


def test_a_field_named_like_a_record_attribute_and_an_exception_are_kept() -> None:
    # `message` may not be set on a LogRecord; the rejection log uses it as a field.
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "rejected", None, None)
    record.fields = {"message": "image 1 is empty"}
    try:
        raise ValueError("bad value")
    except ValueError:
        record.exc_info = sys.exc_info()
    payload = json.loads(JsonFormatter().format(record))
    assert payload["event"] == "rejected" and payload["message"] == "image 1 is empty"
    assert "ValueError: bad value" in payload["exc_info"]
    assert list(payload)[:3] == ["timestamp", "level", "event"]
