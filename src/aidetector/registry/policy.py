"""The promotion decision as a pure function: candidates + champion + policy -> Decision.

No MLflow here, so every rule is unit-testable; promote.py reads the registry, scores the
champion and every candidate on one evaluation suite in one run, and applies the decision.
Every number a decision quotes comes from that suite table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from aidetector.config_schema import PromoteConfig

LATENCY_KEY = "latency_ms_p95"


@dataclass(frozen=True)
class PromotionPolicy:
    """How the champion is chosen among FP16 candidates (conf/registry/default.yaml: promote)."""

    metric: str = "f1_fake"  # on the suite's test split; ties go to the lower p95 latency
    min_improvement: float = 0.0  # the winner must beat the champion's metric by this much
    min_accuracy: float = 0.0
    max_ece: float = math.inf  # calibrated ECE on the test split
    max_regression: float = math.inf  # accuracy drop against the champion on any set/variant
    max_fp16_accuracy_drop: float = 1.0
    max_latency_ms_p95: float = math.inf
    force: bool = False  # replace the champion even with a lower-scoring winner
    auto: bool = True  # False: decide and report, never move an alias

    @classmethod
    def from_config(cls, promote: PromoteConfig, force: bool = False) -> PromotionPolicy:
        """Build the policy from the `registry.promote` config; force=True overrides it."""
        return cls(
            metric=promote.metric,
            min_improvement=promote.min_improvement,
            min_accuracy=promote.min_accuracy,
            max_ece=promote.max_ece,
            max_regression=promote.max_regression,
            max_fp16_accuracy_drop=promote.max_fp16_accuracy_drop,
            max_latency_ms_p95=promote.max_latency_ms_p95,
            force=promote.force or force,
            auto=promote.auto,
        )


@dataclass(frozen=True)
class Candidate:
    """A model version as the policy sees it: identity and its suite scores.

    metrics holds the suite's test-split row plus model-level figures (FP16 delta, latency);
    rows is the whole suite table; unscored says why the suite could not score the version.
    """

    version: str
    readable_name: str
    metrics: dict[str, float]
    precision: str = "fp16"
    model_name: str = ""
    data_hash: str = ""
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    unscored: str | None = None

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

    # none: no champion before or after; review: a person must decide (see reason)
    action: Literal["promote", "keep", "none", "review"]
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


def worst_regression(candidate: Candidate, champion: Candidate) -> tuple[float, str] | None:
    """Return (largest accuracy drop against the champion, row) over sets and variants."""
    drops = [
        (row["accuracy"] - candidate.rows[name]["accuracy"], name)
        for name, row in champion.rows.items()
        if "/" not in name  # sets and variants; per-source rows are too small to gate on
        and name in candidate.rows
        and not math.isnan(row.get("accuracy", math.nan))
        and not math.isnan(candidate.rows[name].get("accuracy", math.nan))
    ]
    return max(drops) if drops else None


def apply_gates(
    candidate: Candidate, policy: PromotionPolicy, champion: Candidate | None = None
) -> tuple[GateResult, ...]:
    """Return the result of every gate for one candidate (regression: against champion)."""
    if candidate.unscored:
        return (GateResult("suite", False, None, None, f"not scored: {candidate.unscored}"),)
    delta = candidate.metric("fp16_accuracy_delta")
    drop = None if delta is None else max(0.0, -delta)  # an FP16 gain is no drop
    gates = [
        _gate("metric", policy.metric, candidate.metric(policy.metric), None, True),
        _gate("min_accuracy", "accuracy", candidate.metric("accuracy"), policy.min_accuracy, True),
        _gate("max_ece", "calibrated ECE", candidate.metric("ece"), policy.max_ece, False),
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
    ]
    if champion is not None and not champion.unscored and champion.version != candidate.version:
        worst = worst_regression(candidate, champion)
        value, row = worst if worst else (None, "")
        gate = _gate(
            "max_regression",
            f"accuracy drop against the champion ({row or 'no common set'})",
            value,
            policy.max_regression,
            False,
        )
        gates.append(gate)
    return tuple(gates)


def _score(candidate: Candidate, metric: str) -> tuple[float, float]:
    """Return (metric, -latency): larger is better; missing values rank last."""
    score = candidate.metric(metric)
    latency = candidate.metric(LATENCY_KEY)
    return (-math.inf if score is None else score, -math.inf if latency is None else -latency)


def outranks(challenger: Candidate, champion: Candidate, metric: str, margin: float = 0.0) -> bool:
    """True if challenger beats champion: metric higher by more than margin (or, with no
    margin, equal and faster)."""
    if champion.metric(metric) is None:
        return True  # nothing shows the new model is worse
    if margin > 0:
        challenger_score, champion_score = (
            _score(challenger, metric)[0],
            _score(champion, metric)[0],
        )
        return challenger_score >= champion_score + margin
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

    if champion is not None and champion.unscored:
        # Scores from another suite mean nothing next to these: a person decides.
        results = tuple(CandidateResult(c, apply_gates(c, policy)) for c in candidates)
        reason = (
            f"needs review: champion {champion.label} cannot be scored on this suite "
            f"({champion.unscored}); champion kept, no automatic promotion"
        )
        return Decision("review", current, None, current, reason, results)
    checked = [CandidateResult(c, apply_gates(c, policy, champion)) for c in candidates]
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
    if outranks(winner, champion, metric, policy.min_improvement):
        margin = f" by at least {policy.min_improvement:g}" if policy.min_improvement else ""
        reason = f"{shown(winner)} beats champion {shown(champion)}{margin}"
        return Decision("promote", winner.version, runner_up, current, reason, results)
    if policy.force:
        reason = f"{shown(winner)} replaces champion {shown(champion)} because promotion was forced"
        return Decision("promote", winner.version, runner_up, current, reason, results)
    margin = f" by {policy.min_improvement:g}" if policy.min_improvement else ""
    reason = (
        f"best candidate {shown(winner)} does not beat champion {shown(champion)}{margin}; "
        f"champion kept (force to replace it)"
    )
    return Decision("keep", current, winner.version, current, reason, results)
