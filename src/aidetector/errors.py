"""User-facing errors: the CLI prints these as one line, without a traceback."""


class AidetectorError(Exception):
    """An error caused by input or configuration that the user can fix."""
