"""The CLI: --help works, and user errors give one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import PROJECT_ROOT


def run_cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    """Run `aidetector ARGS` as a user would and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "aidetector.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (32, 32), (index * 7 % 255, 40, 90)).save(folder / f"{index}.png")


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("prepare", "train", "evaluate"):
        assert command in result.stdout


def test_missing_data_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = run_cli(
        "prepare", "data=folder", f"data.root={missing}", f"paths.prepared={tmp_path}/p"
    )
    assert_one_line_error(result, str(missing))


def test_empty_class_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "REAL", 6)
    (tmp_path / "FAKE").mkdir()
    result = run_cli(
        "prepare", "data=folder", f"data.root={tmp_path}", f"paths.prepared={tmp_path}/p"
    )
    assert_one_line_error(result, "FAKE")


def test_folder_with_only_one_class(tmp_path: Path) -> None:
    write_images(tmp_path / "REAL", 6)
    result = run_cli(
        "prepare", "data=folder", f"data.root={tmp_path}", f"paths.prepared={tmp_path}/p"
    )
    assert_one_line_error(result, "FAKE")


def test_unknown_model_name() -> None:
    result = run_cli("train", "model=resnet999")
    assert_one_line_error(result, "unknown model 'resnet999'", "vit_small")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=resnet18", "data.image_size=16", "demo.image_size=16"], "at least 32 px"),
        (
            ["model=vit_tiny", "data.image_size=30", "demo.image_size=30"],
            "multiple of the patch size",
        ),
    ],
)
def test_image_size_the_model_cannot_take(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    result = run_cli("train", *overrides, f"paths.prepared={tmp_path}/missing")
    assert_one_line_error(result, message)


def test_prepare_set_refuses_an_unconfigured_set() -> None:
    result = run_cli("prepare-set", "--name", "nope", "+evaluate.suite.sets.xs.root=/tmp")
    assert_one_line_error(result, "suite set 'nope' is not configured", "configured: xs")


def test_prepare_set_names_a_set_folder_without_class_folders(tmp_path: Path) -> None:
    write_images(tmp_path / "data" / "REAL", 6)
    (tmp_path / "data" / "FAKE").mkdir()
    for index in range(6):  # other pixels than REAL's, so no image is filed under both
        Image.new("RGB", (32, 32), (200, index * 9, 10)).save(
            tmp_path / "data/FAKE" / f"{index}.png"
        )
    (tmp_path / "odd" / "cats").mkdir(parents=True)
    prepare = ["data=folder", f"data.root={tmp_path}/data", f"paths.prepared={tmp_path}/p"]
    assert run_cli("prepare", *prepare).returncode == 0
    result = run_cli(
        "prepare-set",
        *prepare,
        f"paths.suite={tmp_path}/suite",
        f"+evaluate.suite.sets.odd.root={tmp_path}/odd",
    )
    assert_one_line_error(result, str(tmp_path / "odd"))


def test_a_bad_suite_variant_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "evaluate",
        f"paths.prepared={tmp_path}/p",
        "evaluate.suite.variants=[{name: x, kind: blur}]",
    )
    assert_one_line_error(result)


def test_a_mistyped_override_is_one_line_naming_the_key() -> None:
    result = run_cli("train", "trainer.max_epochs=ten")
    assert_one_line_error(
        result,
        "override 'trainer.max_epochs=ten': trainer.max_epochs: expected a valid integer",
        "got 'ten'",
    )


def test_an_unknown_key_in_conf_is_one_line_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    demo = tmp_path / "conf" / "data" / "demo.yaml"
    demo.write_text(demo.read_text() + "imgae_size: 32\n")
    result = run_cli("params", cwd=tmp_path)
    assert_one_line_error(
        result, "conf/data/demo.yaml: data.imgae_size: unknown key (did you mean image_size?)"
    )
    assert not (tmp_path / "params.yaml").exists()


def test_a_mistyped_params_yaml_is_one_line_naming_it(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    committed = (PROJECT_ROOT / "params.yaml").read_text()
    params.write_text(committed.replace("max_epochs: 8", "max_epochs: ten"))
    result = run_cli("--params", str(params), "train")
    assert_one_line_error(
        result, f"{params}: trainer.max_epochs: expected a valid integer, got 'ten'"
    )


def test_params_writes_what_dvc_composes(tmp_path: Path) -> None:
    output = tmp_path / "params.yaml"
    assert run_cli("params", "--output", str(output)).returncode == 0
    assert output.read_text() == (PROJECT_ROOT / "params.yaml").read_text()
