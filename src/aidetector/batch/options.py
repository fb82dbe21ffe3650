"""What a scoring run is asked to do, and what it did (shared by both engines and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aidetector.batch.decode import InputLimits
    from aidetector.batch.scorer import ModelRef


@dataclass(frozen=True)
class ScoreOptions:
    """How a run scores: threshold, input limits, batch size, decode workers, device."""

    threshold: float
    limits: InputLimits
    batch_size: int
    # Local engine: DataLoader decoding processes (0: in-process). Ray: see ray_engine.py.
    workers: int
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True


@dataclass(frozen=True)
class ScoreSummary:
    """What a run did: files listed, skipped as already scored, scored, failed; its speed."""

    out: str
    model: ModelRef
    precision: str
    listed: int
    skipped: int
    scored: int
    errors: int
    # The whole run, and its scoring part: after the model is loaded and the results read.
    seconds: float
    scoring_seconds: float

    @property
    def images_per_second(self) -> float:
        """Files scored or failed per second of scoring (skipped files are not counted)."""
        done = self.scored + self.errors
        return done / self.scoring_seconds if self.scoring_seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for the CLI."""
        model = f"{self.model.name} version {self.model.version} ({self.precision})"
        return (
            f"scored {self.scored} images, {self.errors} errors, {self.skipped} already scored, "
            f"with {model} in {self.seconds:.1f} s ({self.images_per_second:.1f} img/s scoring) "
            f"-> {self.out}"
        )
