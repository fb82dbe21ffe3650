"""The promotion decision as a pure function: candidates + champion + policy -> Decision.

No MLflow here, so every rule is unit-testable; promote.py reads the registry, scores the
champion and every candidate on one evaluation suite in one run, and applies the decision.
Every number a decision quotes comes from that suite table and its 95% intervals.

Decisions survive sampling noise. An absolute gate fails a candidate only when its interval
lies wholly on the wrong side of the limit. Candidate and champion are compared image by
image (a paired bootstrap of the difference, intervals.py): a candidate replaces the champion
only when it is better by at least min_improvement with 95% confidence, and is blocked for a
regression only when a set or variant is worse by more than max_regression with 95%
confidence. A difference the data cannot resolve keeps the champion, and the reason says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from aidetector.config.schema import PromoteConfig
from aidetector.evaluation.intervals import CONFIDENCE, Difference, paired_difference
from aidetector.evaluation.suite import TEST_SET

LATENCY_KEY = "latency_ms_p95"


@dataclass(frozen=True)
class PromotionPolicy:
    """How the champion is chosen among FP16 candidates (conf/registry/default.yaml: promote)."""

    metric: str = "f1_fake"  # on the suite's test split; ties go to the lower p95 latency
    min_improvement: float = 0.0  # the winner must beat the champion by this much (paired)
    min_accuracy: float = 0.0
    max_ece: float = math.inf  # calibrated ECE on the test split, beyond chance at its n
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
    rows is the whole suite table; outputs holds P(FAKE) per image for every set and variant
    row, for paired comparisons; unscored says why the suite could not score the version.
    """

    version: str
    readable_name: str
    metrics: dict[str, float]
    precision: str = "fp16"
    model_name: str = ""
    data_hash: str = ""
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    unscored: str | None = None
    weights_sha256: str = ""
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Return e.g. 'version 4 (v2.1_vit_tiny_fp16)'."""
        return f"version {self.version} ({self.readable_name or 'unnamed'})"

    def metric(self, key: str) -> float | None:
        """Return a metric, or None when it is missing or not a number."""
        value = self.metrics.get(key)
        return None if value is None or math.isnan(value) else value

    def bounds(self, key: str) -> tuple[float | None, float | None, float | None]:
        """Return (value, low, high) of a metric; a missing interval is the value itself."""
        value = self.metric(key)
        low, high = self.metric(f"{key}_low"), self.metric(f"{key}_high")
        return value, value if low is None else low, value if high is None else high


@dataclass(frozen=True)
class GateResult:
    """One gate applied to one candidate."""

    gate: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    low: float | None = None  # the value's 95% interval, where it has one
    high: float | None = None


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
    # The winner against the champion on the test split, when both could be compared.
    comparison: Difference | None = None


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


def _interval(low: float, high: float) -> str:
    return f"[{low:.4g}, {high:.4g}]"


def _bounded_gate(
    name: str,
    text: str,
    bounds: tuple[float | None, float | None, float | None],
    threshold: float,
    at_least: bool,
) -> GateResult:
    """Fail only when the whole 95% interval lies on the wrong side of the threshold."""
    value, low, high = bounds
    if value is None or low is None or high is None:
        return GateResult(name, False, None, threshold, f"{text} is missing")
    shown = f"{text} {value:.4g} {_interval(low, high)}"
    if at_least:
        passed, side = high >= threshold, "below"
    else:
        passed, side = low <= threshold, "above"
    detail = (
        f"{shown}: not shown {side} {threshold:g}"
        if passed
        else f"{shown}: {side} {threshold:g} with {CONFIDENCE:.0%} confidence"
    )
    return GateResult(name, passed, value, threshold, detail, low, high)


def calibration_gate(candidate: Candidate, policy: PromotionPolicy) -> GateResult:
    """Fail when the ECE is above max_ece and above what a calibrated model shows by chance.

    ECE is biased upwards on small sets: a perfectly calibrated model scores about 0.024 on
    240 images. `ece_calibrated_high` is the top of its 95% range at this n and on these
    confidences (consistency resampling), so a calibrated model passes 97.5% of the time.
    """
    ece = candidate.metric("ece")
    limit = policy.max_ece
    if ece is None:
        return GateResult("max_ece", False, None, limit, "calibrated ECE is missing")
    chance = candidate.metric("ece_calibrated_high")
    n = candidate.metric("n")
    by_chance = f"the {chance:.4g} a calibrated model reaches by chance" if chance else ""
    by_chance += f" at n={n:.0f}" if chance and n is not None else ""
    passed = ece <= limit or (chance is not None and ece <= chance)
    if ece <= limit:
        detail = f"calibrated ECE {ece:.4g} <= {limit:g}"
    elif passed:
        detail = f"calibrated ECE {ece:.4g} > {limit:g} but within {by_chance}"
    else:
        detail = f"calibrated ECE {ece:.4g} > {limit:g}" + (
            f" and above {by_chance}" if by_chance else ""
        )
    return GateResult("max_ece", passed, ece, limit, detail, None, chance)


def fp16_gate(candidate: Candidate, policy: PromotionPolicy) -> GateResult:
    """Fail when FP16 loses more than the limit against FP32, with 95% confidence."""
    value, low, high = candidate.bounds("fp16_accuracy_drop")
    if value is None:  # a table without the paired figure: the point delta (a gain is no drop)
        delta = candidate.metric("fp16_accuracy_delta")
        value = low = high = None if delta is None else max(0.0, -delta)
    return _bounded_gate(
        "max_fp16_accuracy_drop",
        "FP16 accuracy drop",
        (value, low, high),
        policy.max_fp16_accuracy_drop,
        at_least=False,
    )


def _paired_rows(
    candidate: Candidate, champion: Candidate, truth: dict[str, np.ndarray]
) -> list[str]:
    """Return the set and variant rows both versions have per-image outputs for."""
    return [
        row
        for row in champion.outputs
        if "/" not in row  # sets and variants; per-source rows are too small to gate on
        and row in candidate.outputs
        and row in truth
    ]


def regression_gate(
    candidate: Candidate,
    champion: Candidate,
    policy: PromotionPolicy,
    truth: dict[str, np.ndarray],
) -> GateResult:
    """Block when a set or variant is less accurate than the champion's by more than
    max_regression with 95% confidence (paired, on the same images)."""
    drops = [
        (
            paired_difference(
                "accuracy", truth[row], candidate.outputs[row], champion.outputs[row]
            ),
            row,
        )
        for row in _paired_rows(candidate, champion, truth)
    ]
    if not drops:
        return GateResult(
            "max_regression",
            False,
            None,
            policy.max_regression,
            "accuracy drop against the champion is missing (no common set with per-image outputs)",
        )
    drop, row = max(drops, key=lambda item: (item[0].low, item[0].value))
    shown = f"accuracy drop against the champion on {row}: {drop.describe()}"
    passed = drop.low <= policy.max_regression
    limit = f"{100 * policy.max_regression:.1f} pp"
    detail = (
        f"{shown}: not shown above {limit}"
        if passed
        else f"{shown}: above {limit} with {CONFIDENCE:.0%} confidence"
    )
    return GateResult(
        "max_regression", passed, drop.value, policy.max_regression, detail, drop.low, drop.high
    )


def apply_gates(
    candidate: Candidate,
    policy: PromotionPolicy,
    champion: Candidate | None = None,
    truth: dict[str, np.ndarray] | None = None,
) -> tuple[GateResult, ...]:
    """Return the result of every gate for one candidate (regression: against champion)."""
    if candidate.unscored:
        return (GateResult("suite", False, None, None, f"not scored: {candidate.unscored}"),)
    gates = [
        _gate("metric", policy.metric, candidate.metric(policy.metric), None, True),
        _bounded_gate(
            "min_accuracy",
            "accuracy",
            candidate.bounds("accuracy"),
            policy.min_accuracy,
            at_least=True,
        ),
        calibration_gate(candidate, policy),
        fp16_gate(candidate, policy),
        _gate(
            "max_latency_ms_p95",
            "batch-1 p95 latency (ms)",
            candidate.metric(LATENCY_KEY),
            policy.max_latency_ms_p95,
            False,
        ),
    ]
    if champion is not None and not champion.unscored and champion.version != candidate.version:
        gates.append(regression_gate(candidate, champion, policy, truth or {}))
    return tuple(gates)


def _score(candidate: Candidate, metric: str) -> tuple[float, float]:
    """Return (metric, -latency): larger is better; missing values rank last."""
    score = candidate.metric(metric)
    latency = candidate.metric(LATENCY_KEY)
    return (-math.inf if score is None else score, -math.inf if latency is None else -latency)


def compare_with_champion(
    candidate: Candidate, champion: Candidate, metric: str, truth: dict[str, np.ndarray]
) -> Difference | None:
    """Return candidate minus champion in metric on the test split, paired; None without
    per-image outputs for both."""
    if not (TEST_SET in candidate.outputs and TEST_SET in champion.outputs and TEST_SET in truth):
        return None
    return paired_difference(
        metric, truth[TEST_SET], champion.outputs[TEST_SET], candidate.outputs[TEST_SET]
    )


def decide_promotion(
    candidates: list[Candidate],
    champion: Candidate | None,
    policy: PromotionPolicy,
    truth: dict[str, np.ndarray] | None = None,
) -> Decision:
    """Return the promotion decision: the best passing candidate, when the data shows it is
    better than the champion (truth: whether each image is FAKE, per suite row)."""
    truth = truth or {}
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
    checked = [CandidateResult(c, apply_gates(c, policy, champion, truth)) for c in candidates]
    passing = sorted((r for r in checked if r.passed), key=lambda r: order(r.candidate))
    ranks = {r.candidate.version: index + 1 for index, r in enumerate(passing)}
    results = tuple(
        CandidateResult(r.candidate, r.gates, ranks.get(r.candidate.version)) for r in checked
    )
    metric = policy.metric

    def shown(candidate: Candidate) -> str:
        value, low, high = candidate.bounds(metric)
        if value is None or low is None or high is None:
            return f"{candidate.label}, {metric} n/a"
        return f"{candidate.label}, {metric} {value:.4f} [{low:.4f}, {high:.4f}]"

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
    if winner.weights_sha256 and winner.weights_sha256 == champion.weights_sha256:
        reason = (
            f"{winner.label} has the same weights as champion {champion.label}; "
            "identical weights never replace each other, champion kept"
        )
        return Decision("keep", current, None, current, reason, results)
    comparison = compare_with_champion(winner, champion, metric, truth)
    needed = max(policy.min_improvement, 0.0)
    resolved = comparison is not None and comparison.low > 0 and comparison.low >= needed
    if comparison is None:
        versus = (
            f"not resolved: {winner.label} and champion {champion.label} have no per-image "
            "outputs on a common test split to compare"
        )
    else:
        versus = f"{metric} {comparison.describe()}"
    if resolved:
        reason = (
            f"{shown(winner)} beats champion {shown(champion)}: {versus}, better by at least "
            f"{100 * needed:.1f} pp with {CONFIDENCE:.0%} confidence"
        )
        return Decision("promote", winner.version, runner_up, current, reason, results, comparison)
    if policy.force:
        reason = (
            f"{shown(winner)} replaces champion {shown(champion)} because promotion was forced "
            f"({versus})"
        )
        return Decision("promote", winner.version, runner_up, current, reason, results, comparison)
    if comparison is not None and comparison.high < 0:
        verdict = f"{winner.label} does not beat champion {champion.label}: {versus}"
    elif comparison is not None:
        verdict = (
            f"not resolved: {versus}; {winner.label} would need to beat champion "
            f"{champion.label} by at least {100 * needed:.1f} pp with {CONFIDENCE:.0%} "
            "confidence"
        )
    else:
        verdict = versus
    reason = f"{verdict}; champion {shown(champion)} kept (force to replace it)"
    return Decision("keep", current, winner.version, current, reason, results, comparison)
