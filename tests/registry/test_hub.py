"""push-hub: the dry run lists the upload and shows the card; no token, no upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from aidetector.cli import main
from aidetector.registry.export import export_from_uri
from aidetector.registry.hub import build_model_card, push_model_dir
from aidetector.registry.promote import promote_by_policy
from aidetector.registry.register import register_models

from .conftest import (
    MlflowServer,
    eval_metrics,
    install_trained_model,
    registry_config,
)


def test_dry_run_lists_the_files_and_shows_the_card(
    tmp_path: Path,
    server_env: MlflowServer,
    trained_dirs: dict[str, Path],
    separable_prepared: Path,
    shared_score_cache: Path,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    cfg = registry_config(tmp_path, prepared=separable_prepared, score_cache=shared_score_cache)
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics(accuracy=0.875))
    register_models(cfg)
    assert promote_by_policy(cfg).decision.champion == "2"  # right on the whole suite
    name = f"registry.name={cfg.registry.name}"

    assert main(["push-hub", "--repo-id", "acme/detector", "--dry-run", name]) == 0
    out = capsys.readouterr().out
    assert "would upload v1.1_vit_tiny_fp16 (version 2) to acme/detector" in out
    for file_name in ("README.md", "config.yaml", "metrics.json", "model.safetensors"):
        assert f"  {file_name} (" in out
    assert "## Intended use" in out and "synthetic demo data" in out

    assert main(["push-hub", "--repo-id", "acme/detector", name]) == 2
    assert "HF_TOKEN is not set" in capsys.readouterr().err


def test_card_states_metrics_data_use_limitations_and_licence(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    cfg = registry_config(tmp_path, None, "data=cifake")
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics(accuracy=0.875, roc_auc=0.93))
    fp32 = register_models(cfg)[0]
    exported = export_from_uri(server_env.uri, cfg.registry.name, tmp_path / "out", version="1")

    card = build_model_card(exported)
    text = str(card)
    assert fp32.readable_name in text and "| accuracy | 0.8750 |" in text
    assert "| ROC-AUC | 0.9300 |" in text
    for section in ("## Metrics", "## Data", "## Intended use", "## Limitations", "## Licence"):
        assert section in text
    assert "CIFAKE" in text and "Bird & Lotfi" in text
    assert exported.weights_sha256 in text
    assert "Output label order (`config.yaml` `class_names`): 0 = REAL, 1 = FAKE." in text
    parsed = ModelCard(text).data
    assert parsed.license == "mit"
    assert {r.metric_type: r.metric_value for r in parsed.eval_results}["accuracy"] == 0.875

    card.save(tmp_path / "out" / "README.md")
    upload = push_model_dir(tmp_path / "out", "acme/detector", None, True, "msg")
    assert [path for path, _ in upload.files] == [
        "README.md",
        "config.yaml",
        "metrics.json",
        "model.safetensors",
    ]
    assert upload.uploaded is False
