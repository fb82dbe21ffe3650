"""first_line: the one line of a library's error that a user-facing message quotes."""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from aidetector.errors import first_line


def test_first_line_takes_the_first_line_or_the_type_name() -> None:
    assert first_line(ValueError("  bad value\nTraceback detail\n")) == "bad value"
    assert first_line(OSError()) == "OSError"
    # MlflowException keeps its text in .message; str() adds nothing more useful.
    assert first_line(MlflowException("RESOURCE_DOES_NOT_EXIST: no model\nmore")) == (
        "RESOURCE_DOES_NOT_EXIST: no model"
    )
