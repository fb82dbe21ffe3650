"""promote: suite-scored policy promotion, gates, caching, review, manual promotion, rollback.

Every version here has real, known quality on the session's separable suite (see conftest):
the decisions follow the suite's numbers, whatever the versions' own metric tags claim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from aidetector.cli import main
from aidetector.config.schema import RunConfig
from aidetector.errors import AidetectorError
from aidetector.registry.aliases import HISTORY_TAG, promote_version, rollback
from aidetector.registry.promote import promote_by_policy
from aidetector.registry.register import register_models
from aidetector.registry.suite_scores import cache_path
from conftest import with_value

from .conftest import (
    UNCALIBRATED_TEMPERATURE,
    MlflowServer,
    eval_metrics,
    install_trained_model,
    registry_config,
    suite_overrides,
)

VARIANT_ROWS = ["test:jpeg_q75", "test:jpeg_q50", "test:half_size", "test:center_crop"]


def register(
    cfg: RunConfig, source: Path, data_hash: str | None = None, **metrics: float
) -> list[str]:
    """Install one trained model with these metric tags, register it; return [fp32, fp16]."""
    install_trained_model(cfg, source, eval_metrics(**metrics), data_hash=data_hash)
    return [v.version for v in register_models(cfg)]


def aliases(server: MlflowServer, name: str) -> dict[str, str]:
    return dict(MlflowClient(server.uri).get_registered_model(name).aliases)


def read_report(cfg: RunConfig) -> dict[str, Any]:
    return json.loads(Path(cfg.registry.promote.report).read_text())


def entry(report: dict[str, Any], version: str) -> dict[str, Any]:
    return next(c for c in report["candidates"] if c["version"] == version)


def cache_files(cfg: RunConfig) -> dict[str, float]:
    """Return every cached suite score file and its modification time."""
    root = Path(cfg.registry.promote.score_cache)
    return {p.name: p.stat().st_mtime_ns for p in root.glob("*.json")} if root.is_dir() else {}


@pytest.fixture
def two_candidates(
    tmp_path: Path,
    server_env: MlflowServer,
    trained_dirs: dict[str, Path],
    separable_prepared: Path,
    shared_score_cache: Path,
) -> RunConfig:
    """A registered model with a bad ViT (versions 1-2, chance) and a good one (3-4, 100%).

    The metric tags claim the opposite ranking: they must not matter.
    """
    cfg = registry_config(tmp_path, prepared=separable_prepared, score_cache=shared_score_cache)
    assert register(cfg, trained_dirs["vit_bad"], f1_fake=0.95) == ["1", "2"]
    assert register(cfg, trained_dirs["vit_a"], f1_fake=0.80) == ["3", "4"]
    return cfg


def test_policy_promotes_the_best_fp16_version(
    two_candidates: RunConfig, server_env: MlflowServer
) -> None:
    outcome = promote_by_policy(two_candidates)
    assert outcome.decision.champion == "4"
    assert aliases(server_env, two_candidates.registry.name) == {"champion": "4"}
    report = read_report(two_candidates)
    assert report["decision"]["champion_name"] == "v2.1_vit_tiny_fp16"
    assert [c["version"] for c in report["candidates"]] == ["2", "4"]  # FP16 only
    good, bad = entry(report, "4"), entry(report, "2")
    assert good["rows"]["test"]["accuracy"] == 1.0 and good["passed"] is True
    assert bad["rows"]["test"]["accuracy"] <= 0.6
    assert "min_accuracy" in [g["gate"] for g in bad["gates"] if not g["passed"]]
    for candidate in (good, bad):
        assert candidate["unscored"] is None
        assert sorted(candidate["rows"]) == sorted(["test", *VARIANT_ROWS])
    assert len(report["suite"]["hash"]) == 64
    assert sorted(report["suite"]["variants"]) == sorted(v.split(":")[1] for v in VARIANT_ROWS)
    assert report["applied"] is True and "v2.1_vit_tiny_fp16" in report["decision"]["reason"]


def test_a_gate_rejects_a_better_or_equal_scoring_candidate(
    two_candidates: RunConfig, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    # Version 6 is right on every image, but at temperature 50 it is never confident: its
    # calibrated ECE is ~0.5, far above max_ece.
    register(two_candidates, trained_dirs["vit_uncalibrated"], f1_fake=0.99)
    outcome = promote_by_policy(two_candidates)
    assert outcome.decision.champion == "4", outcome.decision.reason
    results = {r.candidate.version: r for r in outcome.decision.results}
    rejected, winner = results["6"].candidate, results["4"].candidate
    assert rejected.metrics["f1_fake"] >= winner.metrics["f1_fake"]
    assert rejected.metrics["temperature"] == UNCALIBRATED_TEMPERATURE
    assert rejected.metrics["ece"] > 0.4 > 0.03 > winner.metrics["ece"]
    assert [g.gate for g in results["6"].gates if not g.passed] == ["max_ece"]
    assert entry(read_report(two_candidates), "6")["passed"] is False


def test_no_candidate_passing_keeps_the_champion(
    tmp_path: Path,
    two_candidates: RunConfig,
    server_env: MlflowServer,
    separable_prepared: Path,
    capsys: pytest.CaptureFixture[str],
    in_project_root: Path,
) -> None:
    promote_version(two_candidates, "2")
    name = two_candidates.registry.name
    code = main(
        [
            "promote",
            f"registry.name={name}",
            "registry.promote.max_latency_ms_p95=0.001",  # no network answers in a microsecond
            f"registry.promote.report={tmp_path}/strict.json",
            *suite_overrides(
                tmp_path, separable_prepared, two_candidates.registry.promote.score_cache
            ),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "no FP16 candidate passed the gates" in printed
    assert "champion stays version 2" in printed
    assert aliases(server_env, name)["champion"] == "2"
    report = json.loads((tmp_path / "strict.json").read_text())
    assert report["decision"]["action"] == "keep"
    assert "max_latency_ms_p95" in [
        g["gate"] for g in entry(report, "4")["gates"] if not g["passed"]
    ]


def test_auto_false_only_reports(two_candidates: RunConfig, server_env: MlflowServer) -> None:
    cfg = with_value(two_candidates, "registry.promote.auto", False)
    outcome = promote_by_policy(cfg)
    assert outcome.decision.champion == "4" and outcome.applied is False
    assert aliases(server_env, cfg.registry.name) == {}
    assert read_report(cfg)["applied"] is False


def test_manual_promotion_and_rollback_keep_a_history(
    two_candidates: RunConfig, server_env: MlflowServer
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
    two_candidates: RunConfig, capsys: pytest.CaptureFixture[str], in_project_root: Path
) -> None:
    name = two_candidates.registry.name
    assert main(["promote", "--version", "99", f"registry.name={name}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"version 99 of registered model '{name}' does not exist" in error


def test_the_decision_uses_suite_scores_from_one_run_never_the_versions_own_test_numbers(
    tmp_path: Path,
    server_env: MlflowServer,
    trained_dirs: dict[str, Path],
    separable_prepared: Path,
) -> None:
    cfg = registry_config(tmp_path, prepared=separable_prepared)
    # The champion's own test split said f1 0.99; the candidate, trained and tested on other
    # data, said 0.10. On the shared suite the champion is at chance and the candidate perfect.
    champion_data, candidate_data = "a" * 64, "b" * 64
    assert register(cfg, trained_dirs["vit_bad"], champion_data, f1_fake=0.99) == ["1", "2"]
    promote_version(cfg, "2")
    assert register(cfg, trained_dirs["vit_b"], candidate_data, f1_fake=0.10) == ["3", "4"]

    outcome = promote_by_policy(cfg)

    name = cfg.registry.name
    assert outcome.decision.action == "promote" and outcome.decision.champion == "4"
    assert aliases(server_env, name)["champion"] == "4"
    report = read_report(cfg)
    suite_hash = report["suite"]["hash"]
    assert report["suite"]["sets"]["test"]["data_hash"] not in (champion_data, candidate_data)
    previous, candidate = report["previous_champion"], entry(report, "4")
    assert (previous["version"], previous["data_hash"]) == ("2", champion_data)
    assert candidate["data_hash"] == candidate_data
    reason = report["decision"]["reason"]
    for scored in (candidate, previous):
        assert f"f1_fake {scored['rows']['test']['f1_fake']:.4f}" in reason
    assert "0.9900" not in reason and "0.1000" not in reason
    assert candidate["rows"]["test"]["f1_fake"] == 1.0
    assert previous["rows"]["test"]["f1_fake"] < 0.8

    client = MlflowClient(server_env.uri)
    cache = Path(cfg.registry.promote.score_cache)
    for scored in [*report["candidates"], previous]:
        # Each table is the one cached for these weights under this run's suite hash.
        version = client.get_model_version(name, scored["version"])
        cached = json.loads(
            cache_path(cache, version.tags["weights_sha256"], suite_hash).read_text()
        )
        assert cached["suite_hash"] == suite_hash and cached["rows"] == scored["rows"]
        assert sorted(scored["rows"]) == sorted(["test", *VARIANT_ROWS])
    for version_number, claimed in (("2", "0.99"), ("4", "0.1")):
        version = client.get_model_version(name, version_number)
        assert version.tags["metric.f1_fake"] == claimed  # the own numbers stay, unused
        assert version.tags["suite_hash"] == suite_hash
        assert f"### Evaluation suite {suite_hash[:12]}" in version.description
        assert "| row |" in version.description and "| test:jpeg_q50 |" in version.description


def test_scores_are_cached_by_weights_and_suite_hash(
    tmp_path: Path, two_candidates: RunConfig, server_env: MlflowServer
) -> None:
    two_candidates = with_value(
        two_candidates, "registry.promote.score_cache", tmp_path / "own-score-cache"
    )
    # The same question twice, the same answer.
    two_candidates = with_value(two_candidates, "registry.promote.auto", False)
    promote_version(two_candidates, "2")
    first = promote_by_policy(two_candidates)
    first_hash = read_report(two_candidates)["suite"]["hash"]
    files = cache_files(two_candidates)
    assert len(files) == 2 and all(n.endswith(f"-{first_hash}.json") for n in files)

    second = promote_by_policy(two_candidates)
    assert cache_files(two_candidates) == files  # nothing scored or written again
    assert second.decision == first.decision

    # Another recipe for one variant, then one variant fewer: each is another suite, whose
    # scores are computed afresh and cached beside the earlier ones.
    variants = [v.model_dump() for v in two_candidates.evaluate.suite.variants]
    assert variants[0]["name"] == "jpeg_q75"
    variants[0]["quality"] = 60
    hashes = [first_hash]
    for changed in (variants, variants[:-1]):
        before = cache_files(two_candidates)
        two_candidates = with_value(two_candidates, "evaluate.suite.variants", changed)
        outcome = promote_by_policy(two_candidates)
        report = read_report(two_candidates)
        hashes.append(report["suite"]["hash"])
        now = cache_files(two_candidates)
        new = sorted(n for n in now if n not in before)
        assert len(new) == 2 and all(n.endswith(f"-{hashes[-1]}.json") for n in new)
        assert {n: now[n] for n in before} == before  # earlier suites' scores are kept
        assert sorted(entry(report, "4")["rows"]) == sorted(["test", *VARIANT_ROWS[: len(changed)]])
        assert outcome.decision.champion == first.decision.champion == "4"
    assert len(set(hashes)) == 3


def test_a_champion_that_cannot_be_scored_on_the_suite_needs_review(
    tmp_path: Path,
    server_env: MlflowServer,
    trained_dirs: dict[str, Path],
    separable_prepared: Path,
) -> None:
    cfg = registry_config(tmp_path, prepared=separable_prepared)
    assert register(cfg, trained_dirs["vit_64px"]) == ["1", "2"]  # a 64 px model
    promote_version(cfg, "2")
    assert register(cfg, trained_dirs["vit_a"]) == ["3", "4"]

    outcome = promote_by_policy(cfg)

    assert outcome.decision.action == "review"
    assert aliases(server_env, cfg.registry.name) == {"champion": "2"}
    assert outcome.decision.reason.startswith("needs review")
    report = read_report(cfg)
    assert report["decision"]["action"] == "review"
    assert "64 px" in report["previous_champion"]["unscored"]
    assert report["previous_champion"]["rows"] == {}
    assert entry(report, "4")["rows"]["test"]["accuracy"] == 1.0
