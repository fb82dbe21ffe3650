"""The pure promotion decision: ranking, gates that decide on intervals, and a champion that is
replaced only by a candidate the paired comparison shows to be better."""

from __future__ import annotations

import numpy as np

from aidetector.evaluation.intervals import WEIGHTED_METRICS, calibrated_ece_range
from aidetector.evaluation.intervals import metric_intervals as intervals_of
from aidetector.registry.policy import (
    Candidate,
    Decision,
    PromotionPolicy,
    apply_gates,
    calibration_gate,
    decide_promotion,
)

POLICY = PromotionPolicy(
    metric="f1_fake", min_accuracy=0.6, max_fp16_accuracy_drop=0.01, max_latency_ms_p95=100.0
)
N = 1000  # images in the test split (half of them FAKE) and in every other row
IS_FAKE = np.arange(N) % 2 == 1
TRUTH = {"test": IS_FAKE, "test:jpeg_q75": IS_FAKE, "xsrc": IS_FAKE}


def outputs_with_errors(wrong: int, offset: int = 0) -> np.ndarray:
    """Return P(FAKE) per image that gets `wrong` images wrong, starting at image `offset`."""
    prob = np.where(IS_FAKE, 0.9, 0.1)
    missed = (offset + np.arange(wrong)) % N
    prob[missed] = 1.0 - prob[missed]
    return prob


def row_of(prob: np.ndarray) -> dict[str, float]:
    """Return the suite row that scoring would write for these outputs."""
    everyone = np.ones((1, N))
    row = {
        name: float(compute(everyone, IS_FAKE, prob)[0])
        for name, compute in WEIGHTED_METRICS.items()
    }
    return row | intervals_of(IS_FAKE, prob, resamples=200) | {"n": float(N)}


def candidate(
    version: str,
    wrong: int = 100,
    latency: float = 10.0,
    fp16_drop: tuple[float, float, float] = (0.0, 0.0, 0.0),
    rows: dict[str, int] | None = None,
    weights: str | None = None,
    offset: int = 0,
    unscored: str | None = None,
) -> Candidate:
    """Return a candidate scored on the suite: `wrong` errors on test; rows maps other rows to
    their error counts."""
    outputs = {"test": outputs_with_errors(wrong, offset)}
    outputs |= {name: outputs_with_errors(count, offset) for name, count in (rows or {}).items()}
    table = {name: row_of(prob) for name, prob in outputs.items()}
    drop, low, high = fp16_drop
    metrics = table["test"] | {
        "ece": 0.02,
        "latency_ms_p95": latency,
        "fp16_accuracy_drop": drop,
        "fp16_accuracy_drop_low": low,
        "fp16_accuracy_drop_high": high,
    }
    return Candidate(
        version=version,
        readable_name=f"v{version}",
        metrics=metrics,
        rows=table,
        unscored=unscored,
        weights_sha256=weights or f"sha-{version}",
        outputs=outputs,
    )


def decide(
    candidates: list[Candidate], champion: Candidate | None, policy: PromotionPolicy = POLICY
) -> Decision:
    return decide_promotion(candidates, champion, policy, TRUTH)


def test_best_metric_wins_and_runner_up_challenges() -> None:
    decision = decide(
        [candidate("2", wrong=300), candidate("4", wrong=100), candidate("6", wrong=200)], None
    )
    assert (decision.action, decision.champion, decision.challenger) == ("promote", "4", "6")
    assert [r.rank for r in decision.results] == [3, 1, 2]
    # With no champion, the reason quotes the winner's figure with its interval.
    assert "f1_fake 0.9000 [0.8" in decision.reason and "there was no champion" in decision.reason


def test_a_tie_goes_to_the_lower_latency() -> None:
    decision = decide([candidate("2", latency=30.0), candidate("4", latency=20.0)], None)
    assert decision.champion == "4"


def test_each_gate_rejects_its_candidate_when_its_interval_is_wholly_on_the_wrong_side() -> None:
    decision = decide(
        [
            candidate("2", wrong=480),  # accuracy 0.52 [0.49, 0.55] against min 0.6
            candidate("4", fp16_drop=(0.05, 0.03, 0.07)),
            candidate("6", latency=500.0),
            candidate("8", wrong=300),
        ],
        None,
    )
    assert decision.champion == "8"
    failed = {
        r.candidate.version: [g.gate for g in r.gates if not g.passed] for r in decision.results
    }
    assert failed == {
        "2": ["min_accuracy"],
        "4": ["max_fp16_accuracy_drop"],
        "6": ["max_latency_ms_p95"],
        "8": [],
    }
    accuracy = next(g for g in decision.results[0].gates if g.gate == "min_accuracy")
    assert "below 0.6 with 95% confidence" in accuracy.detail


def test_a_figure_whose_interval_reaches_the_limit_passes_its_gate() -> None:
    # Accuracy 0.59 on 1,000 images: its interval [0.56, 0.62] does not exclude 0.6.
    near = candidate("2", wrong=410, fp16_drop=(0.012, -0.002, 0.026))
    gates = {g.gate: g for g in apply_gates(near, POLICY)}
    assert gates["min_accuracy"].passed, gates["min_accuracy"].detail
    assert gates["min_accuracy"].low is not None and gates["min_accuracy"].low < 0.6
    assert "not shown below 0.6" in gates["min_accuracy"].detail
    assert gates["max_fp16_accuracy_drop"].passed  # 1.2 points, but not shown above 1


def test_an_fp16_accuracy_gain_is_no_drop() -> None:
    decision = decide([candidate("2", fp16_drop=(-0.05, -0.07, -0.03))], None)
    assert decision.champion == "2"


def test_no_candidate_passing_keeps_the_champion_and_says_why() -> None:
    champion = candidate("2", wrong=300)
    decision = decide([candidate("4", wrong=900)], champion)
    assert (decision.action, decision.champion, decision.challenger) == ("keep", "2", None)
    assert "no FP16 candidate passed the gates" in decision.reason
    assert "accuracy" in decision.reason and "champion stays version 2" in decision.reason


def test_a_worse_winner_never_replaces_the_champion_unless_forced() -> None:
    champion = candidate("2", wrong=50, latency=500.0)  # fails today's latency gate
    newcomer = candidate("4", wrong=100)
    kept = decide([champion, newcomer], champion)
    assert (kept.action, kept.champion, kept.challenger) == ("keep", "2", "4")
    assert "does not beat champion" in kept.reason
    assert kept.comparison is not None and kept.comparison.high < 0
    forced = PromotionPolicy(**{**POLICY.__dict__, "force": True})
    replaced = decide([champion, newcomer], champion, forced)
    assert (replaced.action, replaced.champion) == ("promote", "4")
    assert "forced" in replaced.reason


def test_an_unresolved_difference_leaves_the_champion_in_place_and_quotes_the_interval() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "min_improvement": 0.005})
    champion = candidate("2", wrong=104)
    # Four fewer errors on 1,000 images, and faster: better on paper, not resolved.
    close = candidate("4", wrong=100, latency=1.0, offset=2)

    kept = decide([champion, close], champion, policy)

    assert (kept.action, kept.champion, kept.challenger) == ("keep", "2", "4")
    assert kept.reason.startswith("not resolved: f1_fake +0.4 pp [")
    assert "on 1,000 images" in kept.reason and "at least 0.5 pp" in kept.reason
    assert kept.comparison is not None
    assert kept.comparison.low < 0.005 < kept.comparison.high or kept.comparison.low < 0


def test_a_clearly_better_candidate_replaces_the_champion() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "min_improvement": 0.005})
    champion = candidate("2", wrong=150)
    better = candidate("4", wrong=80)  # fixes 70 of the champion's errors, adds none

    decision = decide([champion, better], champion, policy)

    assert (decision.action, decision.champion, decision.previous_champion) == ("promote", "4", "2")
    assert decision.comparison is not None and decision.comparison.low >= 0.005
    assert "beats champion" in decision.reason and "on 1,000 images" in decision.reason
    assert "better by at least 0.5 pp with 95% confidence" in decision.reason


def test_an_equal_candidate_does_not_unseat_the_champion() -> None:
    champion = candidate("2")
    decision = decide([champion, candidate("4")], champion)
    assert (decision.action, decision.champion, decision.challenger) == ("keep", "2", "4")
    assert "is still the best FP16 candidate" in decision.reason  # a full tie keeps it


def test_identical_weights_never_replace_each_other_even_when_forced() -> None:
    forced = PromotionPolicy(**{**POLICY.__dict__, "force": True})
    champion = candidate("2", wrong=150, weights="same", latency=20.0)
    twin = candidate("4", wrong=150, weights="same", latency=5.0)  # faster on this run only

    decision = decide([champion, twin], champion, forced)

    assert (decision.action, decision.champion) == ("keep", "2")
    assert "same weights" in decision.reason


def test_without_per_image_outputs_nothing_replaces_the_champion() -> None:
    champion = candidate("2", wrong=300)
    newcomer = candidate("4", wrong=10)
    decision = decide_promotion([champion, newcomer], champion, POLICY, truth=None)
    assert (decision.action, decision.champion) == ("keep", "2")
    regression = {g.gate: g for g in decision.results[1].gates}["max_regression"]
    assert not regression.passed and "no common set with per-image outputs" in regression.detail


def test_a_candidate_without_the_metric_fails_a_gate() -> None:
    bare = Candidate(version="2", readable_name="v2", metrics={"accuracy": 0.9})
    decision = decide([bare], None)
    assert decision.action == "none"
    assert "f1_fake is missing" in decision.reason


def test_a_poorly_calibrated_candidate_fails_the_ece_gate() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_ece": 0.05})
    miscalibrated = candidate("2", wrong=50)
    miscalibrated.metrics.update(ece=0.2, ece_calibrated_high=0.03)
    decision = decide([miscalibrated, candidate("4", wrong=200)], None, policy)
    assert decision.champion == "4"
    failed = [g for g in decision.results[0].gates if not g.passed]
    assert [g.gate for g in failed] == ["max_ece"]
    assert "calibrated ECE 0.2 > 0.05 and above the 0.03" in failed[0].detail


def test_an_ece_above_the_limit_but_within_chance_passes() -> None:
    small = candidate("2")
    small.metrics.update(ece=0.035, ece_calibrated_high=0.044, n=240.0)
    gate = calibration_gate(small, PromotionPolicy(max_ece=0.03))
    assert gate.passed
    assert "within the 0.044 a calibrated model reaches by chance at n=240" in gate.detail


def simulated_model(n: int, ece: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (is_fake, P(FAKE)) of a detector about 93% confident whose verdicts are right
    with probability confidence - ece: perfectly calibrated at ece = 0."""
    confidence = np.clip(rng.beta(8.0, 0.6, n), 0.5, 1.0)
    says_fake = rng.random(n) < 0.5
    right = rng.random(n) < confidence - ece
    is_fake = np.where(right, says_fake, ~says_fake)
    return is_fake, np.where(says_fake, confidence, 1.0 - confidence)


def gate_passes(n: int, ece: float, seed: int) -> bool:
    is_fake, prob = simulated_model(n, ece, np.random.default_rng(seed))
    everyone = np.ones((1, n))
    scored = Candidate(
        version="1",
        readable_name="simulated",
        metrics={
            "ece": float(WEIGHTED_METRICS["ece"](everyone, is_fake, prob)[0]),
            "ece_calibrated_high": calibrated_ece_range(prob, resamples=400, seed=seed)[1],
            "n": float(n),
        },
    )
    return calibration_gate(scored, PromotionPolicy(max_ece=0.03)).passed


def test_the_calibration_gate_passes_calibrated_models_and_fails_miscalibrated_ones() -> None:
    # A gate on the raw ECE (0.03) failed a perfectly calibrated model on 240 images about
    # 28% of the time. This one compares the ECE with what calibration allows at that n.
    for n, runs in ((240, 200), (1_000, 100), (10_000, 20)):
        passed = sum(gate_passes(n, 0.0, seed) for seed in range(runs))
        assert passed >= 0.95 * runs, f"a calibrated model passed {passed}/{runs} at n={n}"
    for n, runs in ((1_000, 50), (10_000, 10)):
        failed = sum(not gate_passes(n, 0.08, seed) for seed in range(runs))
        assert failed == runs, f"an ECE-0.08 model passed {runs - failed}/{runs} at n={n}"


def test_regression_blocks_when_a_variant_is_worse_with_confidence() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.01})
    champion = candidate("2", wrong=150, rows={"test:jpeg_q75": 100, "xsrc": 100})
    # Better on test, but 100 more errors than the champion on the JPEG variant (10 points).
    newcomer = candidate("4", wrong=50, rows={"test:jpeg_q75": 200, "xsrc": 102})

    gates = {g.gate: g for g in apply_gates(newcomer, policy, champion, TRUTH)}

    regression = gates["max_regression"]
    assert not regression.passed
    assert regression.value is not None and abs(regression.value - 0.1) < 1e-9
    assert regression.low is not None and regression.low > 0.01
    assert "test:jpeg_q75" in regression.detail and "with 95% confidence" in regression.detail
    decision = decide([champion, newcomer], champion, policy)
    assert (decision.action, decision.champion) == ("keep", "2")


def test_a_drop_within_noise_is_no_regression() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.01})
    champion = candidate("2", wrong=150, rows={"xsrc": 100})
    # 1.2 points worse on xsrc (12 images of 1,000): more than 0.01, but not resolved.
    newcomer = candidate("4", wrong=50, rows={"xsrc": 112})

    gate = {g.gate: g for g in apply_gates(newcomer, policy, champion, TRUTH)}["max_regression"]

    assert gate.passed, gate.detail
    assert gate.value is not None and gate.value > 0.01 and "not shown above" in gate.detail


def test_per_source_rows_do_not_count_as_regressions() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.01})
    champion = candidate("2", wrong=150, rows={"xsrc": 100})
    newcomer = candidate("4", wrong=50, rows={"xsrc": 100})
    champion.rows["xsrc/FAKE/genA"] = {"accuracy": 1.0}
    newcomer.rows["xsrc/FAKE/genA"] = {"accuracy": 0.0}

    gates = {g.gate: g for g in apply_gates(newcomer, policy, champion, TRUTH)}

    assert gates["max_regression"].passed
    assert "genA" not in gates["max_regression"].detail
    decision = decide([champion, newcomer], champion, policy)
    assert (decision.action, decision.champion) == ("promote", "4")


def test_the_champion_is_not_gated_against_itself() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.0})
    champion = candidate("2")
    gates = apply_gates(champion, policy, champion, TRUTH)
    assert "max_regression" not in {g.gate for g in gates}


def test_an_unscored_candidate_fails_the_suite_gate() -> None:
    unscored = candidate("4", wrong=10, unscored="takes 64 px inputs")
    decision = decide([unscored, candidate("2")], None)
    assert decision.champion == "2"
    gates = decision.results[0].gates
    assert [(g.gate, g.passed) for g in gates] == [("suite", False)]
    assert "not scored: takes 64 px inputs" in gates[0].detail


def test_an_unscored_champion_needs_review_and_nothing_is_promoted() -> None:
    champion = candidate("2", unscored="its input size differs from the suite's")
    decision = decide([candidate("4", wrong=10)], champion)
    assert decision.action == "review"
    assert (decision.champion, decision.challenger, decision.previous_champion) == (
        "2",
        None,
        "2",
    )
    assert decision.reason.startswith("needs review")
    assert "its input size differs" in decision.reason
