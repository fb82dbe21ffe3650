"""Applies the promotion policy to the registry, and promotes or rolls back by hand."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from aidetector.registry import CHAMPION
from aidetector.registry.aliases import rollback_champion, set_challenger, set_champion
from aidetector.registry.client import alias_version, connect, get_registered_model, mlflow_errors
from aidetector.registry.evidence import metrics_from_tags
from aidetector.registry.policy import Candidate, Decision, PromotionPolicy, decide_promotion
from aidetector.registry.register import list_versions
from aidetector.tracking import tracking_uri


@dataclass(frozen=True)
class PromotionOutcome:
    """A policy promotion: the decision, whether aliases moved, and where the report went."""

    decision: Decision
    applied: bool
    report: Path


def candidate_from_version(version: ModelVersion) -> Candidate:
    """Return the policy's view of a model version, from its tags."""
    tags = version.tags
    return Candidate(
        version=str(version.version),
        readable_name=tags.get("readable_name", ""),
        metrics=metrics_from_tags(tags),
        precision=tags.get("precision", ""),
        model_name=tags.get("model_name", ""),
        data_hash=tags.get("data_hash", ""),
    )


def fp16_candidates(client: MlflowClient, name: str) -> list[Candidate]:
    """Return every FP16 version of the registered model as a candidate, oldest first."""
    versions = [v for v in list_versions(client, name) if v.tags.get("precision") == "fp16"]
    return [candidate_from_version(v) for v in sorted(versions, key=lambda v: int(v.version))]


def apply_decision(client: MlflowClient, name: str, decision: Decision) -> None:
    """Move the aliases as the decision says."""
    if decision.action == "promote" and decision.champion:
        set_champion(client, name, decision.champion, by="policy", reason=decision.reason)
    if decision.challenger and decision.challenger != decision.champion:
        set_challenger(client, name, decision.challenger)


def promote_by_policy(cfg: DictConfig, force: bool = False) -> PromotionOutcome:
    """Pick the best FP16 version by policy, move aliases if promote.auto, write the report."""
    uri = tracking_uri(cfg)
    client = connect(uri)
    name = str(cfg.registry.name)
    policy = PromotionPolicy.from_config(cfg.registry.promote, force=force)
    with mlflow_errors(uri):
        get_registered_model(client, name)
        current = alias_version(client, name, CHAMPION)
        champion = candidate_from_version(current) if current else None
        decision = decide_promotion(fp16_candidates(client, name), champion, policy)
        if policy.auto:
            apply_decision(client, name, decision)
    report = Path(cfg.registry.promote.report)
    write_promotion_report(report, name, policy, decision, champion, applied=policy.auto)
    return PromotionOutcome(decision, policy.auto, report)


def promotion_report(
    name: str,
    policy: PromotionPolicy,
    decision: Decision,
    previous: Candidate | None,
    applied: bool,
) -> dict[str, Any]:
    """Return promotion.json's content: every candidate, each gate, the decision and why."""
    labels = {r.candidate.version: r.candidate.readable_name for r in decision.results}
    if previous:
        labels.setdefault(previous.version, previous.readable_name)
    return {
        "registered_model": name,
        "applied": applied,
        "policy": asdict(policy),
        "previous_champion": asdict(previous) if previous else None,
        "decision": {
            "action": decision.action,
            "champion": decision.champion,
            "champion_name": labels.get(decision.champion or ""),
            "challenger": decision.challenger,
            "challenger_name": labels.get(decision.challenger or ""),
            "reason": decision.reason,
        },
        "candidates": [
            {**asdict(r.candidate), "passed": r.passed, "rank": r.rank}
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
) -> None:
    """Write promotion.json (no timestamps: an unchanged decision writes an unchanged file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = promotion_report(name, policy, decision, previous, applied)
    path.write_text(json.dumps(report, indent=2) + "\n")


def promote_version(cfg: DictConfig, version: str) -> bool:
    """Make version the champion by hand; return False if it already was."""
    uri = tracking_uri(cfg)
    client = connect(uri)
    with mlflow_errors(uri):
        return set_champion(client, str(cfg.registry.name), version, by="manual")


def rollback(cfg: DictConfig) -> tuple[str, str]:
    """Move champion back to the previous champion; return (from_version, to_version)."""
    uri = tracking_uri(cfg)
    client = connect(uri)
    with mlflow_errors(uri):
        return rollback_champion(client, str(cfg.registry.name))
