"""The pure promotion decision: ranking, gates, and never replacing the champion with worse."""

from __future__ import annotations

import math

from aidetector.registry.policy import Candidate, PromotionPolicy, apply_gates, decide_promotion

POLICY = PromotionPolicy(
    metric="f1_fake", min_accuracy=0.6, max_fp16_accuracy_drop=0.01, max_latency_ms_p95=100.0
)


def candidate(
    version: str,
    f1_fake: float = 0.8,
    accuracy: float = 0.8,
    latency: float = 10.0,
    delta: float = 0.0,
    ece: float = 0.02,
    rows: dict[str, float] | None = None,
    unscored: str | None = None,
) -> Candidate:
    """Return a scored candidate; rows maps suite row names to their accuracy."""
    metrics = {
        "f1_fake": f1_fake,
        "accuracy": accuracy,
        "ece": ece,
        "latency_ms_p95": latency,
        "fp16_accuracy_delta": delta,
    }
    table = {"test": accuracy, **(rows or {})}
    return Candidate(
        version=version,
        readable_name=f"v{version}",
        metrics=metrics,
        rows={name: {"accuracy": value} for name, value in table.items()},
        unscored=unscored,
    )


def test_best_metric_wins_and_runner_up_challenges() -> None:
    decision = decide_promotion(
        [candidate("2", f1_fake=0.7), candidate("4", f1_fake=0.9), candidate("6", f1_fake=0.8)],
        None,
        POLICY,
    )
    assert (decision.action, decision.champion, decision.challenger) == ("promote", "4", "6")
    assert [r.rank for r in decision.results] == [3, 1, 2]


def test_a_tie_goes_to_the_lower_latency() -> None:
    decision = decide_promotion(
        [candidate("2", latency=30.0), candidate("4", latency=20.0)], None, POLICY
    )
    assert decision.champion == "4"


def test_each_gate_rejects_its_candidate() -> None:
    decision = decide_promotion(
        [
            candidate("2", f1_fake=0.99, accuracy=0.5),
            candidate("4", f1_fake=0.98, delta=-0.05),
            candidate("6", f1_fake=0.97, latency=500.0),
            candidate("8", f1_fake=0.6),
        ],
        None,
        POLICY,
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


def test_an_fp16_accuracy_gain_is_no_drop() -> None:
    decision = decide_promotion([candidate("2", delta=0.05)], None, POLICY)
    assert decision.champion == "2"


def test_no_candidate_passing_keeps_the_champion_and_says_why() -> None:
    champion = candidate("2", f1_fake=0.7)
    decision = decide_promotion([candidate("4", accuracy=0.1)], champion, POLICY)
    assert (decision.action, decision.champion, decision.challenger) == ("keep", "2", None)
    assert "no FP16 candidate passed the gates" in decision.reason
    assert "accuracy" in decision.reason and "champion stays version 2" in decision.reason


def test_a_worse_winner_never_replaces_the_champion_unless_forced() -> None:
    champion = candidate("2", f1_fake=0.95, latency=500.0)  # fails today's latency gate
    newcomer = candidate("4", f1_fake=0.9)
    kept = decide_promotion([champion, newcomer], champion, POLICY)
    assert (kept.action, kept.champion, kept.challenger) == ("keep", "2", "4")
    assert "does not beat champion" in kept.reason
    forced = PromotionPolicy(**{**POLICY.__dict__, "force": True})
    replaced = decide_promotion([champion, newcomer], champion, forced)
    assert (replaced.action, replaced.champion) == ("promote", "4")
    assert "forced" in replaced.reason


def test_an_equal_candidate_does_not_unseat_the_champion() -> None:
    champion = candidate("2")
    decision = decide_promotion([champion, candidate("4")], champion, POLICY)
    assert (decision.action, decision.champion, decision.challenger) == ("keep", "2", "4")


def test_a_candidate_without_the_metric_fails_a_gate() -> None:
    bare = Candidate(version="2", readable_name="v2", metrics={"accuracy": 0.9})
    decision = decide_promotion([bare], None, POLICY)
    assert decision.action == "none"
    assert "f1_fake is missing" in decision.reason


def test_a_poorly_calibrated_candidate_fails_the_ece_gate() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_ece": 0.05})
    decision = decide_promotion(
        [candidate("2", f1_fake=0.95, ece=0.2), candidate("4", f1_fake=0.8)], None, policy
    )
    assert decision.champion == "4"
    failed = [g for g in decision.results[0].gates if not g.passed]
    assert [g.gate for g in failed] == ["max_ece"]
    assert "calibrated ECE 0.2 > 0.05" in failed[0].detail


def test_regression_is_the_worst_set_or_variant_against_the_champion() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.05})
    champion = candidate("2", f1_fake=0.8, rows={"test:jpeg_q75": 0.8, "xsrc": 0.9})
    # Better on test, but 0.1 worse than the champion on the JPEG variant.
    newcomer = candidate("4", f1_fake=0.9, rows={"test:jpeg_q75": 0.7, "xsrc": 0.88})

    gates = {g.gate: g for g in apply_gates(newcomer, policy, champion)}

    regression = gates["max_regression"]
    assert not regression.passed
    assert regression.value is not None and math.isclose(regression.value, 0.1)
    assert "test:jpeg_q75" in regression.detail
    decision = decide_promotion([champion, newcomer], champion, policy)
    assert (decision.action, decision.champion) == ("keep", "2")


def test_per_source_rows_do_not_count_as_regressions() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.05})
    champion = candidate("2", f1_fake=0.8, rows={"xsrc": 0.9, "xsrc/FAKE/genA": 1.0})
    newcomer = candidate("4", f1_fake=0.9, rows={"xsrc": 0.9, "xsrc/FAKE/genA": 0.0})

    gates = {g.gate: g for g in apply_gates(newcomer, policy, champion)}

    assert gates["max_regression"].passed
    assert "genA" not in gates["max_regression"].detail
    decision = decide_promotion([champion, newcomer], champion, policy)
    assert (decision.action, decision.champion) == ("promote", "4")


def test_the_champion_is_not_gated_against_itself() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "max_regression": 0.0})
    champion = candidate("2")
    assert "max_regression" not in {g.gate for g in apply_gates(champion, policy, champion)}


def test_a_winner_within_the_margin_does_not_replace_the_champion() -> None:
    policy = PromotionPolicy(**{**POLICY.__dict__, "min_improvement": 0.05})
    champion = candidate("2", f1_fake=0.80)
    close = candidate("4", f1_fake=0.83, latency=1.0)  # better and faster, but by too little

    kept = decide_promotion([champion, close], champion, policy)

    assert (kept.action, kept.champion, kept.challenger) == ("keep", "2", "4")
    assert "does not beat champion" in kept.reason and "by 0.05" in kept.reason
    clear = decide_promotion([champion, candidate("6", f1_fake=0.86)], champion, policy)
    assert (clear.action, clear.champion) == ("promote", "6")
    assert "by at least 0.05" in clear.reason


def test_an_unscored_candidate_fails_the_suite_gate() -> None:
    unscored = candidate("4", f1_fake=0.99, unscored="takes 64 px inputs")
    decision = decide_promotion([unscored, candidate("2")], None, POLICY)
    assert decision.champion == "2"
    gates = decision.results[0].gates
    assert [(g.gate, g.passed) for g in gates] == [("suite", False)]
    assert "not scored: takes 64 px inputs" in gates[0].detail


def test_an_unscored_champion_needs_review_and_nothing_is_promoted() -> None:
    champion = candidate("2", unscored="its input size differs from the suite's")
    decision = decide_promotion([candidate("4", f1_fake=0.99)], champion, POLICY)
    assert decision.action == "review"
    assert (decision.champion, decision.challenger, decision.previous_champion) == (
        "2",
        None,
        "2",
    )
    assert decision.reason.startswith("needs review")
    assert "its input size differs" in decision.reason
