"""The promotion decision as a pure function: candidates + champion + policy -> Decision.

No MLflow here, so every rule is unit-testable; promote.py reads the registry and applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

LATENCY_KEY = "latency_ms_p95"


@dataclass(frozen=True)
class PromotionPolicy:
    """How the champion is chosen among FP16 candidates (conf/registry/default.yaml: promote)."""

    metric: str = "f1_fake"  # higher is better; ties go to the lower batch-1 p95 latency
    min_accuracy: float = 0.0
    max_fp16_accuracy_drop: float = 1.0
    max_latency_ms_p95: float = math.inf
    force: bool = False  # replace the champion even with a lower-scoring winner
    auto: bool = True  # False: decide and report, never move an alias

    @classmethod
    def from_config(cls, node: Any, force: bool = False) -> PromotionPolicy:
        """Build the policy from the `registry.promote` config node; force=True overrides it."""
        return cls(
            metric=str(node.metric),
            min_accuracy=float(node.min_accuracy),
            max_fp16_accuracy_drop=float(node.max_fp16_accuracy_drop),
            max_latency_ms_p95=float(node.max_latency_ms_p95),
            force=bool(node.force) or force,
            auto=bool(node.auto),
        )


@dataclass(frozen=True)
class Candidate:
    """A model version as the policy sees it: identity and test metrics."""

    version: str
    readable_name: str
    metrics: dict[str, float]
    precision: str = "fp16"
    model_name: str = ""
    data_hash: str = ""

    @property
    def label(self) -> str:
        """Return e.g. 'version 4 (v2.1_vit_tiny_fp16)'."""
        return f"version {self.version} ({self.readable_name or 'unnamed'})"

    def metric(self, key: str) -> float | None:
        """Return a metric, or None when it is missing or not a number."""
        value = self.metrics.get(key)
        return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class GateResult:
    """One gate applied to one candidate."""

    gate: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class CandidateResult:
    """A candidate with its gate results and its rank among those that passed (1 = best)."""

    candidate: Candidate
    gates: tuple[GateResult, ...]
    rank: int | None = None

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(gate.passed for gate in self.gates)


@dataclass(frozen=True)
class Decision:
    """What promotion does: the champion and challenger afterwards, and why."""

    action: Literal["promote", "keep", "none"]  # none: no champion before or after
    champion: str | None
    challenger: str | None  # None leaves the challenger alias as it is
    previous_champion: str | None
    reason: str
    results: tuple[CandidateResult, ...] = field(default_factory=tuple)


def _gate(
    name: str, text: str, value: float | None, threshold: float | None, at_least: bool
) -> GateResult:
    """Compare value with threshold (>= if at_least, else <=); None threshold: presence only."""
    if value is None:
        return GateResult(name, False, None, threshold, f"{text} is missing")
    if threshold is None:
        return GateResult(name, True, value, None, f"{text} {value:.4g}")
    passed = value >= threshold if at_least else value <= threshold
    relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}
    detail = f"{text} {value:.4g} {relation[(at_least, passed)]} {threshold:g}"
    return GateResult(name, passed, value, threshold, detail)


def apply_gates(candidate: Candidate, policy: PromotionPolicy) -> tuple[GateResult, ...]:
    """Return the result of every gate for one candidate."""
    delta = candidate.metric("fp16_accuracy_delta")
    drop = None if delta is None else max(0.0, -delta)  # an FP16 gain is no drop
    return (
        _gate("metric", policy.metric, candidate.metric(policy.metric), None, True),
        _gate("min_accuracy", "accuracy", candidate.metric("accuracy"), policy.min_accuracy, True),
        _gate(
            "max_fp16_accuracy_drop",
            "FP16 accuracy drop",
            drop,
            policy.max_fp16_accuracy_drop,
            False,
        ),
        _gate(
            "max_latency_ms_p95",
            "batch-1 p95 latency (ms)",
            candidate.metric(LATENCY_KEY),
            policy.max_latency_ms_p95,
            False,
        ),
    )


def _score(candidate: Candidate, metric: str) -> tuple[float, float]:
    """Return (metric, -latency): larger is better; missing values rank last."""
    score = candidate.metric(metric)
    latency = candidate.metric(LATENCY_KEY)
    return (-math.inf if score is None else score, -math.inf if latency is None else -latency)


def outranks(challenger: Candidate, champion: Candidate, metric: str) -> bool:
    """True if challenger scores strictly better: higher metric, or equal and faster."""
    if champion.metric(metric) is None:
        return True  # nothing shows the new model is worse
    return _score(challenger, metric) > _score(champion, metric)


def decide_promotion(
    candidates: list[Candidate], champion: Candidate | None, policy: PromotionPolicy
) -> Decision:
    """Return the promotion decision: best passing candidate, never worse than the champion."""
    current = champion.version if champion else None

    def order(candidate: Candidate) -> tuple[float, float, int, int]:
        # Best score, then lower latency; on a full tie keep the champion (no churn),
        # then prefer the newer version.
        score, neg_latency = _score(candidate, policy.metric)
        return (-score, -neg_latency, candidate.version != current, -int(candidate.version))

    checked = [CandidateResult(c, apply_gates(c, policy)) for c in candidates]
    passing = sorted((r for r in checked if r.passed), key=lambda r: order(r.candidate))
    ranks = {r.candidate.version: index + 1 for index, r in enumerate(passing)}
    results = tuple(
        CandidateResult(r.candidate, r.gates, ranks.get(r.candidate.version)) for r in checked
    )
    metric = policy.metric

    def shown(candidate: Candidate) -> str:
        value = candidate.metric(metric)
        return f"{candidate.label}, {metric} {'n/a' if value is None else f'{value:.4f}'}"

    if not passing:
        failures = "; ".join(
            f"{r.candidate.label}: " + ", ".join(g.detail for g in r.gates if not g.passed)
            for r in results
        )
        why = (
            f"no FP16 candidate passed the gates ({failures})" if results else "no FP16 candidates"
        )
        stays = f"champion stays {champion.label}" if champion else "no champion is set"
        return Decision(
            "keep" if champion else "none", current, None, current, f"{why}; {stays}", results
        )

    winner = passing[0].candidate
    runner_up = passing[1].candidate.version if len(passing) > 1 else None
    if champion is None:
        reason = f"{shown(winner)} is the best FP16 candidate; there was no champion"
        return Decision("promote", winner.version, runner_up, None, reason, results)
    if winner.version == current:
        reason = f"champion {shown(winner)} is still the best FP16 candidate"
        return Decision("keep", current, runner_up, current, reason, results)
    if outranks(winner, champion, metric):
        reason = f"{shown(winner)} beats champion {shown(champion)}"
        return Decision("promote", winner.version, runner_up, current, reason, results)
    if policy.force:
        reason = f"{shown(winner)} replaces champion {shown(champion)} because promotion was forced"
        return Decision("promote", winner.version, runner_up, current, reason, results)
    reason = (
        f"best candidate {shown(winner)} does not beat champion {shown(champion)}; "
        f"champion kept (force to replace it)"
    )
    return Decision("keep", current, winner.version, current, reason, results)
