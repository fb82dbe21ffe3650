"""The suite table in Markdown, and a version description that carries exactly one of it."""

from __future__ import annotations

from aidetector.registry.policy import Candidate
from aidetector.registry.suite_table import (
    SUITE_HEADING,
    describe_with_suite,
    suite_table_markdown,
)

SUITE_HASH = "abc123def456" + "0" * 52


def scored(version: str, rows: dict[str, dict[str, float]]) -> Candidate:
    metrics = {"fp16_accuracy_delta": -0.01, "latency_ms_p95": 4.0}
    return Candidate(version=version, readable_name=f"v{version}_cnn", metrics=metrics, rows=rows)


def full_row(accuracy: float) -> dict[str, float]:
    return {
        "accuracy": accuracy,
        "accuracy_low": accuracy - 0.02,
        "accuracy_high": accuracy + 0.01,
        "roc_auc": 0.9,
        "ece": 0.05,
        "flagged": 0.1,
        "n": 1200.0,
    }


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_the_champion_comes_first_and_each_suite_row_has_one_line() -> None:
    champion = scored("2", {"test": full_row(0.8), "test:jpeg_q75": full_row(0.7)})
    newcomer = scored("5", {"test": full_row(0.9), "xsrc/FAKE/genA": full_row(0.6)})

    text = suite_table_markdown(SUITE_HASH, [newcomer, champion], champion)

    assert text.startswith(f"{SUITE_HEADING} abc123def456")
    header, *rows = table_lines(text)
    assert header.index("champion v2 v2_cnn acc") < header.index("v5 v5_cnn acc")
    assert [row.split(" | ")[0] for row in rows] == [
        "| test",
        "| test:jpeg_q75",
        "| xsrc/FAKE/genA",
    ]
    test_cells = rows[0].strip("| ").split(" | ")
    # row, n, then acc / AUC / ECE / UNCERTAIN per version; accuracy with its 95% interval.
    assert test_cells[1] == "1200"
    assert test_cells[2] == "0.800 [0.780, 0.810]" and test_cells[6] == "0.900 [0.880, 0.910]"
    assert "brackets hold 95% intervals" in text


def test_missing_rows_and_metrics_show_n_a() -> None:
    champion = scored("2", {"test": full_row(0.8), "test:jpeg_q75": {"accuracy": 0.7}})
    newcomer = scored("5", {"test": full_row(0.9)})

    text = suite_table_markdown(SUITE_HASH, [newcomer], champion)

    jpeg = next(row for row in table_lines(text) if row.startswith("| test:jpeg_q75"))
    cells = jpeg.strip("| ").split(" | ")[1:]
    assert cells == ["n/a", "0.700", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]


def test_unscored_versions_are_listed_with_their_reason_not_as_columns() -> None:
    champion = Candidate("2", "v2_vit", {}, unscored="takes 64 px inputs")
    newcomer = scored("5", {"test": full_row(0.9)})

    text = suite_table_markdown(SUITE_HASH, [newcomer], champion)

    assert "- version 2 (v2_vit): not scored (takes 64 px inputs)" in text
    assert "v2_vit acc" not in table_lines(text)[0]
    only_unscored = suite_table_markdown(SUITE_HASH, [], champion)
    assert table_lines(only_unscored) == []


def test_describe_with_suite_replaces_an_earlier_suite_section() -> None:
    first = suite_table_markdown(SUITE_HASH, [scored("5", {"test": full_row(0.91)})], None)
    second = suite_table_markdown(SUITE_HASH, [scored("5", {"test": full_row(0.95)})], None)

    once = describe_with_suite("Trained on CIFAKE.", first)
    twice = describe_with_suite(once, second)

    assert twice.count(SUITE_HEADING) == 1
    assert twice.startswith("Trained on CIFAKE.\n\n")
    assert "0.950 [" in twice and "0.910" not in twice
    assert describe_with_suite("", first) == f"{first}\n"
