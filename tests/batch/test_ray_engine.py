"""The Ray engine on a local Ray instance that the test starts: the local engine's rows."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aidetector.batch.local import score_local
from aidetector.batch.model import local_model
from aidetector.batch.options import ScoreOptions
from aidetector.batch.sources import list_sources
from aidetector.cli import main
from conftest import PROJECT_ROOT
from serving.images import encode, photo

from .conftest import ImageFolder, read_results

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed: pip install '.[ray]'")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance on two CPUs, no dashboard; shut down after the module."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def sorted_rows(out: Path) -> list[dict[str, object]]:
    return sorted(read_results(out), key=lambda row: str(row["path"]))


def test_ray_engine_writes_the_local_engines_rows_and_resumes(
    tmp_path: Path,
    model_dir: Path,
    image_folder: ImageFolder,
    options: ScoreOptions,
    local_ray: None,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    from aidetector.batch.ray_engine import score_with_ray

    model, paths = local_model(model_dir), list_sources([str(image_folder.root)])
    score_local(paths, model, str(tmp_path / "local.parquet"), options)
    summary = score_with_ray(paths, model, str(tmp_path / "ray.parquet"), options)
    assert (summary.scored + summary.errors, summary.errors) == (len(paths), len(image_folder.bad))
    # Identical, float for float: the same decoder and BatchScorer run in Ray's tasks and actors.
    assert sorted_rows(tmp_path / "ray.parquet") == sorted_rows(tmp_path / "local.parquet")

    # Through the CLI, after one new image: only that one is scored, the rest is skipped.
    (image_folder.root / "new.jpg").write_bytes(encode(photo(999), "JPEG", quality=90))
    code = main(
        ["score", str(image_folder.root), "--engine", "ray", "--model-dir", str(model_dir),
         "--out", str(tmp_path / "ray.parquet"), "--batch-size", "4", "serve.device=cpu"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"scored 1 images, 0 errors, {len(paths)} already scored" in out
    assert len(read_results(tmp_path / "ray.parquet")) == len(paths) + 1


def test_the_ray_extra_and_the_test_requirements_pin_the_same_ray() -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    [extra] = pyproject["project"]["optional-dependencies"]["ray"]
    extras = (PROJECT_ROOT / "requirements-extras.txt").read_text()
    assert extra in extras.splitlines()
    version = re.fullmatch(r"ray\[data\]==([\d.]+)", extra)
    assert version and ray.__version__ == version.group(1)
    # The core install stays without Ray: neither the runtime nor the serving pins name it.
    for name in ("requirements.txt", "requirements-serve.txt"):
        assert "ray" not in re.findall(r"^([\w-]+)", (PROJECT_ROOT / name).read_text(), re.M)
