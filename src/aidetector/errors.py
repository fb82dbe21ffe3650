"""User-facing errors: the CLI prints these as one line, without a traceback."""


class AidetectorError(Exception):
    """An error caused by input or configuration that the user can fix."""


def first_line(error: BaseException) -> str:
    """Return the first non-empty line of an error's message, or its type's name."""
    message = str(getattr(error, "message", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__
