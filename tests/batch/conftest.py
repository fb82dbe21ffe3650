"""A tiny calibrated model with a domain profile, and folders of good, odd and bad images.

The model is the serving tests' kind (tests/serving/conftest.py): random weights, a
temperature other than 1, a domain profile fitted on noise photos of TRAINING_SIZE, so that
those photos are in domain and one eight times larger is not. It is a ViT-Tiny named
vit_tiny, so the registry tests can register it as the configured model.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from aidetector.batch.decode import InputLimits
from aidetector.batch.options import ScoreOptions
from aidetector.config.loading import compose_config
from aidetector.config.schema import RunConfig
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import PROJECT_ROOT, TINY_VIT_SPEC

# The registry tests' real `mlflow server` (a session fixture of that package's conftest).
from registry.conftest import mlflow_server, server_env  # noqa: F401
from serving.conftest import fit_test_domain
from serving.images import black_png, encode, oversized_jpeg, photo

TEMPERATURE = 1.3
GOOD_IMAGES = 12


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vit_tiny model directory with a temperature and a domain profile."""
    torch.manual_seed(0)
    network = build_network(**TINY_VIT_SPEC).eval()
    preprocessing = Preprocessing(image_size=32)
    out = tmp_path_factory.mktemp("scoring-model") / "vit_tiny"
    return save_model_dir(
        network,
        TINY_VIT_SPEC,
        preprocessing,
        out,
        ClassOrder((REAL, FAKE)),
        metrics={"accuracy": 0.5},
        temperature=TEMPERATURE,
        domain=fit_test_domain(network, preprocessing),
    )


@dataclass(frozen=True)
class ImageFolder:
    """A folder to score: what each file is, by name relative to root."""

    root: Path
    good: tuple[str, ...]
    bad: dict[str, str]  # name -> a fragment of its error
    out_of_domain: tuple[str, ...]
    hidden: tuple[str, ...]

    @property
    def scored_files(self) -> list[str]:
        """Every file a run must write a row for (hidden files are left out)."""
        return sorted([*self.good, *self.bad, *self.out_of_domain])


def write_image_folder(root: Path, good: int = GOOD_IMAGES) -> ImageFolder:
    """Good photos (JPEG and PNG, some nested), out-of-domain ones, bad files, hidden ones."""
    names = []
    for index in range(good):
        name = f"{'nested/' if index % 3 == 0 else ''}photo_{index:02d}"
        data = encode(photo(index), "JPEG", quality=90)
        if index % 2:  # a PNG of a JPEG's pixels: like the training photos, so in domain
            data = encode(Image.open(io.BytesIO(data)), "PNG")
        names.append(f"{name}.{'png' if index % 2 else 'jpg'}")
        (root / names[-1]).parent.mkdir(parents=True, exist_ok=True)
        (root / names[-1]).write_bytes(data)
    jpeg = encode(photo(100), "JPEG", quality=90)
    bad = {
        "truncated.jpg": "truncated",
        "notes.txt": "not an image",
        "empty.png": "empty",
    }
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "notes.txt").write_text("not a picture\n")
    (root / "empty.png").write_bytes(b"")
    (root / "huge_side.jpg").write_bytes(oversized_jpeg(0))
    (root / "black.png").write_bytes(black_png())
    (root / ".hidden").mkdir()
    (root / ".hidden" / "inside.jpg").write_bytes(jpeg)
    (root / ".dotfile.jpg").write_bytes(jpeg)
    return ImageFolder(
        root,
        tuple(names),
        bad,
        ("black.png", "huge_side.jpg"),
        (".hidden/inside.jpg", ".dotfile.jpg"),
    )


@pytest.fixture
def image_folder(tmp_path: Path) -> ImageFolder:
    """A fresh folder of images per test (see write_image_folder)."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def serve_config() -> RunConfig:
    """The project's composed config (serve limits and threshold), on the CPU."""
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        return compose_config(["serve.device=cpu"])
    finally:
        os.chdir(previous)


@pytest.fixture
def options(serve_config: RunConfig) -> ScoreOptions:
    """Scoring options of the serve config; one decoding worker, small batches, no bar.

    One worker leaves the forward one thread on a two-core machine (see local.py).
    """
    return ScoreOptions(
        threshold=serve_config.serve.threshold,
        limits=InputLimits.from_serve(serve_config.serve),
        batch_size=4,
        workers=1,
        device="cpu",
        progress=False,
    )


def _typed_csv_value(column: str, text: str) -> object:
    if text == "":
        return None
    if column in ("width", "height"):
        return int(text)
    if column in ("prob_fake", "confidence"):
        return float(text)
    if column == "in_domain":
        return text == "true"
    return text


def read_results(out: Path) -> list[dict[str, object]]:
    """Every row of a result file of any format, typed as the writer wrote it."""
    import csv
    import json

    import pyarrow.parquet as pq

    if out.suffix == ".parquet":
        return pq.read_table(out).to_pylist()
    if out.suffix == ".csv":
        with out.open(newline="") as handle:
            return [
                {k: _typed_csv_value(k, v) for k, v in row.items()}
                for row in csv.DictReader(handle)
            ]
    return [json.loads(line) for line in out.read_text().splitlines()]


def by_path(rows: list[dict[str, object]], root: Path) -> dict[str, dict[str, object]]:
    """Rows keyed by their path relative to root."""
    return {os.path.relpath(str(row["path"]), root): row for row in rows}
