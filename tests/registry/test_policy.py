"""The pure promotion decision: ranking, gates, and never replacing the champion with worse."""

from __future__ import annotations

from aidetector.registry.policy import Candidate, PromotionPolicy, decide_promotion

POLICY = PromotionPolicy(
    metric="f1_fake", min_accuracy=0.6, max_fp16_accuracy_drop=0.01, max_latency_ms_p95=100.0
)


def candidate(
    version: str,
    f1_fake: float = 0.8,
    accuracy: float = 0.8,
    latency: float = 10.0,
    delta: float = 0.0,
) -> Candidate:
    metrics = {
        "f1_fake": f1_fake,
        "accuracy": accuracy,
        "latency_ms_p95": latency,
        "fp16_accuracy_delta": delta,
    }
    return Candidate(version=version, readable_name=f"v{version}", metrics=metrics)


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
