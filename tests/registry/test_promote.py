"""promote: policy promotion with gates, report-only mode, manual promotion and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from aidetector.cli import main
from aidetector.errors import AidetectorError
from aidetector.registry.aliases import HISTORY_TAG
from aidetector.registry.promote import promote_by_policy, promote_version, rollback
from aidetector.registry.register import register_models

from .conftest import (
    MlflowServer,
    eval_metrics,
    install_trained_model,
    registry_config,
)


def register(cfg: DictConfig, source: Path, **metrics: float) -> list[str]:
    """Install one trained model with these metrics, register it; return [fp32, fp16] versions."""
    install_trained_model(cfg, source, eval_metrics(**metrics))
    return [v.version for v in register_models(cfg)]


def aliases(server: MlflowServer, name: str) -> dict[str, str]:
    return dict(MlflowClient(server.uri).get_registered_model(name).aliases)


@pytest.fixture
def two_candidates(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> DictConfig:
    """A registered model with two trained ViTs: versions 1-2 (f1 0.80) and 3-4 (f1 0.90)."""
    cfg = registry_config(tmp_path)
    assert register(cfg, trained_dirs["vit_a"], f1_fake=0.80) == ["1", "2"]
    assert register(cfg, trained_dirs["vit_b"], f1_fake=0.90) == ["3", "4"]
    return cfg


def test_policy_promotes_the_best_fp16_version(
    two_candidates: DictConfig, server_env: MlflowServer
) -> None:
    outcome = promote_by_policy(two_candidates)
    assert outcome.decision.champion == "4"
    assert aliases(server_env, two_candidates.registry.name) == {
        "champion": "4",
        "challenger": "2",
    }
    report = json.loads(Path(two_candidates.registry.promote.report).read_text())
    assert report["decision"]["champion_name"] == "v2.1_vit_tiny_fp16"
    assert [c["version"] for c in report["candidates"]] == ["2", "4"]  # FP16 only
    assert all(g["passed"] for c in report["candidates"] for g in c["gates"])
    assert report["applied"] is True and "v2.1_vit_tiny_fp16" in report["decision"]["reason"]


def test_a_gate_rejects_a_better_scoring_candidate(
    two_candidates: DictConfig, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    # Version 6 scores best, but FP16 loses 5 points of accuracy against its FP32 twin.
    register(two_candidates, trained_dirs["vit_c"], f1_fake=0.99, fp16_accuracy_delta=-0.05)
    outcome = promote_by_policy(two_candidates)
    assert outcome.decision.champion == "4"
    rejected = next(r for r in outcome.decision.results if r.candidate.version == "6")
    assert [g.gate for g in rejected.gates if not g.passed] == ["max_fp16_accuracy_drop"]
    report = json.loads(Path(two_candidates.registry.promote.report).read_text())
    assert next(c for c in report["candidates"] if c["version"] == "6")["passed"] is False


def test_no_candidate_passing_keeps_the_champion(
    tmp_path: Path,
    two_candidates: DictConfig,
    server_env: MlflowServer,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    promote_version(two_candidates, "2")
    name = two_candidates.registry.name
    code = main(
        [
            "promote",
            f"registry.name={name}",
            "registry.promote.min_accuracy=0.99",
            f"registry.promote.report={tmp_path}/strict.json",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "no FP16 candidate passed the gates" in printed
    assert "champion stays version 2" in printed
    assert aliases(server_env, name)["champion"] == "2"
    report = json.loads((tmp_path / "strict.json").read_text())
    assert report["decision"]["action"] == "keep"


def test_auto_false_only_reports(two_candidates: DictConfig, server_env: MlflowServer) -> None:
    two_candidates.registry.promote.auto = False
    outcome = promote_by_policy(two_candidates)
    assert outcome.decision.champion == "4" and outcome.applied is False
    assert aliases(server_env, two_candidates.registry.name) == {}
    report = json.loads(Path(two_candidates.registry.promote.report).read_text())
    assert report["applied"] is False


def test_manual_promotion_and_rollback_keep_a_history(
    two_candidates: DictConfig, server_env: MlflowServer
) -> None:
    name = two_candidates.registry.name
    promote_by_policy(two_candidates)  # champion 4
    assert promote_version(two_candidates, "1") is True  # by hand, even an FP32 version
    assert aliases(server_env, name)["champion"] == "1"

    assert rollback(two_candidates) == ("1", "4")
    assert aliases(server_env, name)["champion"] == "4"
    tags = MlflowClient(server_env.uri).get_registered_model(name).tags
    history = json.loads(tags[HISTORY_TAG])
    assert [(e["version"], e["by"]) for e in history] == [("4", "policy")]
    with pytest.raises(AidetectorError, match="no previous champion to roll back to"):
        rollback(two_candidates)


def test_manual_promotion_of_a_missing_version_is_refused(
    two_candidates: DictConfig, capsys: pytest.CaptureFixture[str], in_project_root: Path
) -> None:
    name = two_candidates.registry.name
    assert main(["promote", "--version", "99", f"registry.name={name}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"version 99 of registered model '{name}' does not exist" in error
