"""`aidetector score`: the model from the registry (alias or version), one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from aidetector.batch.command import split_sources
from aidetector.cli import main
from aidetector.registry.register import register_models
from registry.conftest import MlflowServer, eval_metrics, install_trained_model, registry_config

from .conftest import ImageFolder, by_path, read_results


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["score", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert code == 2
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_champion_or_version_comes_from_the_registry(
    tmp_path: Path,
    server_env: MlflowServer,
    model_dir: Path,
    image_folder: ImageFolder,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    cfg = registry_config(tmp_path)
    name = cfg.registry.name
    install_trained_model(cfg, model_dir, eval_metrics())
    fp32, fp16 = register_models(cfg)
    MlflowClient(server_env.uri).set_registered_model_alias(name, "champion", fp16.version)
    out = tmp_path / "results.parquet"
    common = [str(image_folder.root), "--out", str(out), f"registry.name={name}"]
    code, stdout, _ = run_cli(capsys, *common, "serve.device=cpu")
    assert code == 0, stdout
    assert f"with {name} version {fp16.version} (fp32)" in stdout  # FP16 weights, CPU: fp32
    rows = read_results(out)
    assert {(r["model_name"], r["model_version"]) for r in rows} == {(name, fp16.version)}
    assert sorted(by_path(rows, image_folder.root)) == image_folder.scored_files

    # Another version scores everything again, into the same file: resume is per version.
    code, stdout, _ = run_cli(capsys, *common, "--version", fp32.version, "serve.device=cpu")
    assert code == 0 and "0 already scored" in stdout
    versions = [r["model_version"] for r in read_results(out)]
    assert versions.count(fp32.version) == versions.count(fp16.version) == len(rows)

    code, _, err = run_cli(capsys, *common, "--alias", "challenger")
    assert_one_line_error(code, err, "alias 'challenger' is not set", name)


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["{missing}", "--out", "{tmp}/r.csv"], ["does not exist", "missing"]),
        (["{images}", "--out", "{tmp}/r.txt"], ["unknown extension '.txt'", ".parquet"]),
        (["{images}", "--out", "{tmp}/r.csv", "--engine", "ray"], ["--engine ray writes Parquet"]),
        (["nosuchprotocol://bucket/x", "--out", "{tmp}/r.csv"], ["cannot list", "nosuchprotocol"]),
        (["{images}", "--out", "{tmp}/r.csv", "--model-dir", "{tmp}"], ["not a model directory"]),
        (["{images}", "--out", "{tmp}/r.csv", "--batch-size", "0"], ["positive integer"]),
        (["{images}", "--out", "{tmp}/r.csv", "serve.nosuchkey=1"], ["serve.nosuchkey"]),
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path,
    image_folder: ImageFolder,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
    arguments: list[str],
    fragments: list[str],
) -> None:
    values = {"missing": str(tmp_path / "missing"), "tmp": str(tmp_path),
              "images": str(image_folder.root)}  # fmt: skip
    args = [a.format(**values) for a in arguments]
    if "--batch-size" in args:  # argparse's own error: the usage, then one error line
        with pytest.raises(SystemExit) as exit_info:
            main(["score", *args])
        code, err = int(exit_info.value.code or 0), capsys.readouterr().err
        err = err.strip().splitlines()[-1]
    else:
        code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, *fragments)
    assert not list(tmp_path.glob("r.*"))  # nothing was written


def test_sources_and_overrides_share_the_positional_arguments(tmp_path: Path) -> None:
    folder = tmp_path / "year=2026"
    folder.mkdir()
    sources, overrides = split_sources(
        ["s3://bucket/day=1", str(folder), "serve.threshold=0.7", "+x.y=1", "a.jpg"]
    )
    assert sources == ["s3://bucket/day=1", str(folder), "a.jpg"]
    assert overrides == ["serve.threshold=0.7", "+x.y=1"]
