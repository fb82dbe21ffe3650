"""Applies the promotion policy to the registry, and promotes or rolls back by hand."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from aidetector.config.schema import EvaluateConfig, RunConfig
from aidetector.config.tracking import tracking_uri
from aidetector.evaluation.intervals import CONFIDENCE, Difference
from aidetector.evaluation.suite import Suite, load_suite_from_config
from aidetector.registry import CHAMPION
from aidetector.registry.aliases import set_challenger, set_champion
from aidetector.registry.client import alias_version, connect, get_registered_model, mlflow_errors
from aidetector.registry.policy import Candidate, Decision, PromotionPolicy, decide_promotion
from aidetector.registry.register import list_versions
from aidetector.registry.suite_scores import ScoringSettings, VersionScores, score_version
from aidetector.registry.suite_table import describe_with_suite, suite_table_markdown


@dataclass(frozen=True)
class PromotionOutcome:
    """A policy promotion: the decision, whether aliases moved, and where the report went."""

    decision: Decision
    applied: bool
    report: Path


def candidate_from_version(version: ModelVersion, scores: VersionScores) -> Candidate:
    """Return the policy's view of a model version: its identity and its suite scores."""
    tags = version.tags
    return Candidate(
        version=str(version.version),
        readable_name=tags.get("readable_name", ""),
        metrics={**scores.rows.get("test", {}), **scores.model},
        precision=tags.get("precision", ""),
        model_name=tags.get("model_name", ""),
        data_hash=tags.get("data_hash", ""),
        rows=scores.rows,
        unscored=scores.error,
        weights_sha256=scores.weights_sha256 or tags.get("weights_sha256", ""),
        outputs=scores.outputs,
    )


def fp16_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Return every FP16 version of the registered model, oldest first."""
    versions = [v for v in list_versions(client, name) if v.tags.get("precision") == "fp16"]
    return sorted(versions, key=lambda v: int(v.version))


def scoring_settings(evaluate: EvaluateConfig) -> ScoringSettings:
    """Return how the promote stage scores versions (the evaluate stage's settings)."""
    return ScoringSettings(
        batch_size=evaluate.batch_size,
        latency_samples=evaluate.latency_samples,
        latency_warmup=evaluate.latency_warmup,
    )


def publish_suite_table(
    client: MlflowClient,
    name: str,
    suite: Suite,
    candidates: list[Candidate],
    champion: Candidate | None,
    versions: dict[str, ModelVersion],
) -> None:
    """Show the side-by-side suite table in each scored version's MLflow description."""
    table = suite_table_markdown(suite.hash, candidates, champion)
    shown = {c.version for c in candidates} | ({champion.version} if champion else set())
    for version in sorted(shown, key=int):
        current = versions[version]
        description = describe_with_suite(current.description or "", table)
        if description != current.description:
            client.update_model_version(name, version, description=description)
        if current.tags.get("suite_hash") != suite.hash:
            client.set_model_version_tag(name, version, "suite_hash", suite.hash)


def apply_decision(client: MlflowClient, name: str, decision: Decision) -> None:
    """Move the aliases as the decision says."""
    if decision.action == "promote" and decision.champion:
        set_champion(client, name, decision.champion, by="policy", reason=decision.reason)
    if decision.challenger and decision.challenger != decision.champion:
        set_challenger(client, name, decision.challenger)


def promote_by_policy(cfg: RunConfig, force: bool = False) -> PromotionOutcome:
    """Pick the best FP16 version by policy, move aliases if promote.auto, write the report."""
    uri = tracking_uri(cfg.mlflow)
    client = connect(uri)
    name = cfg.registry.name
    policy = PromotionPolicy.from_config(cfg.registry.promote, force=force)
    suite = load_suite_from_config(cfg)
    settings = scoring_settings(cfg.evaluate)
    cache_dir = cfg.registry.promote.score_cache
    with mlflow_errors(uri):
        get_registered_model(client, name)
        current = alias_version(client, name, CHAMPION)
        versions = fp16_versions(client, name)
        if current is not None and all(v.version != current.version for v in versions):
            versions.append(current)  # a champion set by hand may be an FP32 version
        by_number = {str(v.version): v for v in versions}
        scored = {
            number: candidate_from_version(v, score_version(client, v, suite, settings, cache_dir))
            for number, v in by_number.items()
        }
        champion = scored[str(current.version)] if current else None
        candidates = [c for c in scored.values() if c.precision == "fp16"]
        decision = decide_promotion(candidates, champion, policy, suite.truth())
        if policy.auto:
            apply_decision(client, name, decision)
        publish_suite_table(client, name, suite, candidates, champion, by_number)
    report = cfg.registry.promote.report
    write_promotion_report(
        report, name, policy, decision, champion, applied=policy.auto, suite=suite.description
    )
    return PromotionOutcome(decision, policy.auto, report)


def candidate_report(candidate: Candidate) -> dict[str, Any]:
    """Return a candidate as promotion.json shows it: everything but its per-image outputs."""
    return {key: value for key, value in asdict(candidate).items() if key != "outputs"}


def comparison_report(comparison: Difference | None) -> dict[str, Any] | None:
    """Return the paired comparison with the champion, with its interval and n."""
    return None if comparison is None else {**asdict(comparison), "text": comparison.describe()}


def promotion_report(
    name: str,
    policy: PromotionPolicy,
    decision: Decision,
    previous: Candidate | None,
    applied: bool,
    suite: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return promotion.json's content: the suite, every candidate's table and gates, the
    decision and why."""
    labels = {r.candidate.version: r.candidate.readable_name for r in decision.results}
    if previous:
        labels.setdefault(previous.version, previous.readable_name)
    return {
        "registered_model": name,
        "applied": applied,
        "suite": suite,
        "policy": asdict(policy),
        # Every interval and every paired decision is two-sided at this level (intervals.py).
        "confidence": CONFIDENCE,
        "previous_champion": candidate_report(previous) if previous else None,
        "decision": {
            "action": decision.action,
            "champion": decision.champion,
            "champion_name": labels.get(decision.champion or ""),
            "challenger": decision.challenger,
            "challenger_name": labels.get(decision.challenger or ""),
            "reason": decision.reason,
            "comparison": comparison_report(decision.comparison),
        },
        "candidates": [
            {**candidate_report(r.candidate), "passed": r.passed, "rank": r.rank}
            | {"gates": [asdict(g) for g in r.gates]}
            for r in decision.results
        ],
    }


def write_promotion_report(
    path: Path,
    name: str,
    policy: PromotionPolicy,
    decision: Decision,
    previous: Candidate | None,
    applied: bool,
    suite: dict[str, Any] | None = None,
) -> None:
    """Write promotion.json (no timestamps: an unchanged decision writes an unchanged file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = promotion_report(name, policy, decision, previous, applied, suite)
    path.write_text(json.dumps(report, indent=2) + "\n")
