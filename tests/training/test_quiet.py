"""silence_library_noise drops Lightning's product tip and nothing else."""

from __future__ import annotations

import logging

import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from aidetector.training.quiet import RANK_ZERO_LOGGER, silence_library_noise


def test_the_litlogger_tip_is_dropped_and_real_messages_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    silence_library_noise()
    silence_library_noise()  # idempotent: one filter
    assert len(logging.getLogger(RANK_ZERO_LOGGER).filters) == 1
    with caplog.at_level(logging.INFO, logger=RANK_ZERO_LOGGER):
        rank_zero_info("💡 Tip: For seamless cloud logging ... litlogger")
        rank_zero_info("Restoring states from the checkpoint path at best.ckpt")
    assert [r.getMessage() for r in caplog.records] == [
        "Restoring states from the checkpoint path at best.ckpt"
    ]
