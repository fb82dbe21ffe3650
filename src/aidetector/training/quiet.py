"""Silences library output that a user of this project cannot act on.

Lightning 2.6 prints a tip advertising its hosted logger on every run, and its own pytree
helper trips a deprecation in torch 2.14 (fixed upstream, nothing to change here). Both
hide the lines that matter in `make demo`. Real signals are left alone.
"""

from __future__ import annotations

import logging
import warnings

RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"
ADVERT_PREFIX = "💡 Tip"
PYTREE_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(ADVERT_PREFIX)


def silence_library_noise() -> None:
    """Drop Lightning's product tip and torch's LeafSpec deprecation (idempotent)."""
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _DropAdverts) for f in logger.filters):
        logger.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=PYTREE_DEPRECATION)
