"""export: follows the alias (also when the UI sets it), verifies weights, clear errors, parity."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from aidetector.cli import main
from aidetector.config.schema import RunConfig
from aidetector.inference import predict_fp16, predict_prob_fake
from aidetector.models.artifact import load_model_dir, read_model_config
from aidetector.registry.export import export_from_uri
from aidetector.registry.promote import promote_by_policy
from aidetector.registry.register import RegisteredVersion, register_models
from mlflow_process import free_port

from .conftest import (
    MlflowServer,
    eval_metrics,
    install_trained_model,
    registry_config,
)


@pytest.fixture
def registered(
    tmp_path: Path,
    server_env: MlflowServer,
    trained_dirs: dict[str, Path],
    separable_prepared: Path,
    shared_score_cache: Path,
) -> tuple[RunConfig, list[RegisteredVersion]]:
    """One trained ViT registered as versions 1 (FP32) and 2 (FP16); no alias set.

    The ViT is right on the whole evaluation suite, so the policy promotes its FP16 version.
    """
    cfg = registry_config(tmp_path, prepared=separable_prepared, score_cache=shared_score_cache)
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics())
    return cfg, register_models(cfg)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "\n" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_export_writes_the_champion_and_follows_a_ui_alias_change(
    tmp_path: Path,
    server_env: MlflowServer,
    registered: tuple[RunConfig, list[RegisteredVersion]],
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    cfg, versions = registered
    name = cfg.registry.name
    assert promote_by_policy(cfg).decision.champion == "2"  # the FP16 version
    code, out, _ = run_cli(capsys, "export", "--out", f"{tmp_path}/a", f"registry.name={name}")
    assert code == 0 and "version 2@champion" in out
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "config.yaml",
        "metrics.json",
        "model.safetensors",
    ]
    assert read_model_config(tmp_path / "a")["precision"] == "fp16"

    # Exactly the request the MLflow UI sends when someone sets an alias on version 1.
    response = requests.post(
        f"{server_env.uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": name, "alias": "champion", "version": "1"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    code, out, _ = run_cli(capsys, "export", "--out", f"{tmp_path}/b", f"registry.name={name}")
    assert code == 0 and "version 1@champion" in out
    config = read_model_config(tmp_path / "b")
    assert config["precision"] == "fp32"
    assert config["weights_sha256"] == versions[0].weights_sha256
    # Rollback knows about the UI change: it goes back to the policy's choice.
    assert run_cli(capsys, "promote", "--rollback", f"registry.name={name}")[0] == 0
    assert run_cli(capsys, "export", "--out", f"{tmp_path}/c", f"registry.name={name}")[0] == 0
    assert read_model_config(tmp_path / "c")["precision"] == "fp16"


def test_errors_are_one_line_and_name_the_thing(
    tmp_path: Path,
    server_env: MlflowServer,
    registered: tuple[RunConfig, list[RegisteredVersion]],
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, _ = registered
    name = cfg.registry.name
    out = f"--out={tmp_path}/x"
    code, _, err = run_cli(capsys, "export", out, f"registry.name={name}")
    assert_one_line_error(code, err, f"alias 'champion' is not set on registered model '{name}'")
    code, _, err = run_cli(capsys, "export", out, "--version", "7", f"registry.name={name}")
    assert_one_line_error(code, err, f"version 7 of registered model '{name}' does not exist")
    code, _, err = run_cli(capsys, "export", out, "registry.name=no-such-model")
    assert_one_line_error(code, err, "registered model 'no-such-model' does not exist")

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    code, _, err = run_cli(capsys, "export", out, f"registry.name={name}")
    assert_one_line_error(code, err, f"MLflow tracking server {dead} cannot be reached")


def test_corrupt_weights_in_the_artifact_store_are_refused(
    tmp_path: Path,
    server_env: MlflowServer,
    registered: tuple[RunConfig, list[RegisteredVersion]],
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    cfg, versions = registered
    run_id = versions[1].source.split("/")[1]
    [stored] = server_env.artifacts.glob(f"*/{run_id}/artifacts/registry/fp16/model.safetensors")
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    code, _, err = run_cli(
        capsys,
        "export",
        f"--out={tmp_path}/x",
        "--version",
        "2",
        f"registry.name={cfg.registry.name}",
    )
    assert_one_line_error(code, err, "version 2 of", "is corrupt", "model.safetensors")


def image_bytes() -> list[bytes]:
    """PNG and JPEG bytes at sizes other than the model's, so decoding and resizing matter."""
    rng = np.random.default_rng(0)
    blobs = []
    for size, fmt in ((48, "PNG"), (40, "JPEG"), (32, "PNG")):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, fmt)
        blobs.append(buffer.getvalue())
    return blobs


def test_registry_artifact_gives_the_evaluation_path_probabilities(
    tmp_path: Path,
    server_env: MlflowServer,
    registered: tuple[RunConfig, list[RegisteredVersion]],
) -> None:
    cfg, versions = registered
    blobs = image_bytes()
    # The evaluation path: models/<name> loaded in FP32, the FP16 copy made from it.
    evaluated = load_model_dir(Path(cfg.paths.models) / "vit_tiny", dtype=torch.float32)
    arrays = np.stack([evaluated.preprocessing.bytes_to_array(blob) for blob in blobs])
    expected_fp32 = predict_prob_fake(
        evaluated.network, evaluated.preprocessing, arrays, fake_index=1
    )
    expected_fp16 = predict_fp16(
        evaluated.network, evaluated.preprocessing, arrays, 8, fake_index=1
    )

    for version, expected in zip(versions, (expected_fp32, expected_fp16), strict=True):
        out_dir = tmp_path / version.precision
        export_from_uri(server_env.uri, cfg.registry.name, out_dir, version=version.version)
        # config.yaml + weights -> network and preprocessing, in FP32 compute as the CPU
        # serves; the FP16 version's weights are exactly the evaluated FP16 copy's.
        served = load_model_dir(out_dir, dtype=torch.float32)
        inputs = np.stack([served.preprocessing.bytes_to_array(blob) for blob in blobs])
        if version.precision == "fp16":
            probabilities = predict_fp16(
                served.network, served.preprocessing, inputs, 8, fake_index=1
            )
        else:
            probabilities = predict_prob_fake(
                served.network, served.preprocessing, inputs, fake_index=1
            )
        np.testing.assert_array_equal(probabilities, expected)
