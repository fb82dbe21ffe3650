"""How a stage runs from the command line: params.yaml in, one line on a user error."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import InstantiationException

from aidetector.config.loading import PARAMS_FILE, load_config
from aidetector.config.schema import RunConfig
from aidetector.errors import AidetectorError

log = logging.getLogger("aidetector")


def configure_logging(verbose: bool = False) -> None:
    """Log the project's own logger to stderr (Lightning, MLflow and DVC configure theirs)."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


def user_error(error: BaseException) -> AidetectorError | None:
    """Return the AidetectorError behind error, looking through Hydra's instantiate wrapper."""
    current: BaseException | None = error
    while current is not None and not isinstance(current, AidetectorError):
        current = current.__cause__
    return current


def report_errors(name: str, body: Callable[[], None], verbose: bool = False) -> int:
    """Run body; a user error prints `aidetector NAME: error: ...` and returns 2."""
    try:
        body()
    except (AidetectorError, InstantiationException) as error:
        cause = user_error(error)
        if verbose or cause is None:
            raise
        print(f"aidetector {name}: error: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def run_stage(name: str, stage: Callable[[RunConfig], None], params: Path = PARAMS_FILE) -> int:
    """Run one DVC stage on params.yaml (DVC's composed config) and return its exit code."""
    configure_logging()
    return report_errors(name, lambda: stage(load_config([], params)))
