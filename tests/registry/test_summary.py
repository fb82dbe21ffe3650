"""The summary `make demo` ends with: champion, suite figures with intervals, next commands."""

from __future__ import annotations

from typing import Any

from aidetector.registry.summary import champion_entry, promotion_summary


def row(accuracy: float) -> dict[str, float]:
    return {
        "accuracy": accuracy,
        "accuracy_low": accuracy - 0.015,
        "accuracy_high": accuracy + 0.012,
        "f1_fake": 0.95,
        "f1_fake_low": 0.93,
        "f1_fake_high": 0.96,
        "roc_auc": 0.99,
        "ece": 0.02,
        "n": 1050.0,
    }


def report(action: str, champion: str | None) -> dict[str, Any]:
    return {
        "confidence": 0.95,
        "decision": {"action": action, "champion": champion, "reason": "because"},
        "candidates": [
            {
                "version": "2",
                "readable_name": "v1.1_cnn_resnet18_fp16",
                "rows": {"test": row(0.95), "test:jpeg_q75": row(0.9), "xs/FAKE/gan": row(0.5)},
            }
        ],
        "previous_champion": None,
    }


def test_the_summary_names_the_champion_and_quotes_its_figures_with_intervals() -> None:
    text = promotion_summary(report("promote", "2"), "ai-image-detector:v2-abc")

    assert text.startswith(
        "Champion: version 2 (v1.1_cnn_resnet18_fp16)\nDecision (promote): because"
    )
    test_line = next(line for line in text.splitlines() if line.strip().startswith("test "))
    assert "n=1050" in test_line and "accuracy 0.950 [0.935, 0.962]" in test_line
    assert "F1 FAKE 0.950 [0.930, 0.960]" in test_line and "ROC-AUC 0.990" in test_line
    assert "test:jpeg_q75" in text and "xs/FAKE/gan" not in text  # sets and variants only
    assert "Bento model: ai-image-detector:v2-abc" in text
    for command in ("make serve", "make mlflow-ui", "dvc exp run -S model=vit_small"):
        assert command in text


def test_a_kept_champion_is_found_among_the_previous_champion() -> None:
    kept = report("keep", "7")
    kept["previous_champion"] = {"version": "7", "readable_name": "v3.1", "rows": {}}
    assert champion_entry(kept) == {"version": "7", "readable_name": "v3.1", "rows": {}}


def test_without_a_champion_the_summary_says_why() -> None:
    text = promotion_summary(report("none", None), None)
    assert text.startswith("No champion: because")
    assert "Bento model" not in text and "make serve" in text
