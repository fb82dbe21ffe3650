"""The suite table in Markdown: champion and candidates side by side, for MLflow and cards."""

from __future__ import annotations

import math
from collections.abc import Sequence

from aidetector.registry.policy import Candidate

SUITE_HEADING = "### Evaluation suite"
# Columns per model, per row of the suite.
TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "acc"),
    ("roc_auc", "AUC"),
    ("ece", "ECE"),
    ("flagged", "UNCERTAIN"),
)


def _cell(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _cell_with_interval(row: dict[str, float], key: str) -> str:
    """Return e.g. '0.958 [0.931, 0.975]', or the value alone where it has no interval."""
    value = _cell(row.get(key))
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if value == "n/a" or low is None or high is None or math.isnan(low) or math.isnan(high):
        return value
    return f"{value} [{low:.3f}, {high:.3f}]"


def suite_table_markdown(
    suite_hash: str, candidates: Sequence[Candidate], champion: Candidate | None
) -> str:
    """Return a Markdown table: one line per suite row, a column group per version."""
    columns = [champion] if champion is not None else []
    columns += [c for c in candidates if champion is None or c.version != champion.version]
    scored = [c for c in columns if not c.unscored]
    row_names = list(dict.fromkeys(name for c in scored for name in c.rows))
    heading = [f"{SUITE_HEADING} {suite_hash[:12]}", ""]
    heading.append(
        "Scored in one run on suite `" + suite_hash + "`; rows are sets, test-split variants "
        "(`test:...`) and sources (`SET/CLASS/source`); brackets hold 95% intervals (Wilson "
        "for accuracy, a stratified bootstrap over images for AUC and ECE), `n` the images. "
        "UNCERTAIN is the share flagged out of domain."
    )
    for candidate in columns:
        if candidate.unscored:
            heading.append(f"- {candidate.label}: not scored ({candidate.unscored})")
    if not scored:
        return "\n".join(heading)

    def title(candidate: Candidate) -> str:
        role = "champion " if champion is not None and candidate is champion else ""
        return f"{role}v{candidate.version} {candidate.readable_name}".strip()

    header = ["row", "n"]
    header += [f"{title(c)} {short}" for c in scored for _, short in TABLE_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in row_names:
        n = next((c.rows[name]["n"] for c in scored if "n" in c.rows.get(name, {})), None)
        cells = [f"{n:.0f}" if n is not None and not math.isnan(n) else "n/a"]
        cells += [
            _cell_with_interval(c.rows.get(name, {}), key)
            for c in scored
            for key, _ in TABLE_METRICS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    figures = " · ".join(
        f"{title(c)}: {_cell_with_interval(c.metrics, 'fp16_accuracy_drop')} / "
        f"{_cell(c.metrics.get('latency_ms_p95'))}"
        for c in scored
    )
    lines += ["", f"FP32 - FP16 accuracy (paired) / batch-1 p95 latency (ms): {figures}"]
    return "\n".join([*heading, "", *lines])


def describe_with_suite(description: str, table: str) -> str:
    """Return a version description with its suite section replaced by table."""
    kept = description.split(SUITE_HEADING, 1)[0].rstrip()
    return f"{kept}\n\n{table}\n" if kept else f"{table}\n"
