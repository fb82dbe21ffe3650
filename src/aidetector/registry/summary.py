"""The few lines `make demo` ends with: the champion, its suite figures, and what to run next."""

from __future__ import annotations

import math
from typing import Any

# Columns of the summary: (suite row key, heading).
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("f1_fake", "F1 FAKE"),
    ("roc_auc", "ROC-AUC"),
    ("ece", "ECE"),
)
NEXT_STEPS: tuple[tuple[str, str], ...] = (
    ("make serve", "the champion's API and page on http://127.0.0.1:3000"),
    ("make mlflow-ui", "runs, versions and the champion alias on http://127.0.0.1:5000"),
    ("dvc exp run -S model=vit_small", "train another family, then compare: dvc exp show"),
)


def _figure(row: dict[str, float], key: str) -> str:
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if value is None or math.isnan(value):
        return "n/a"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def champion_entry(report: dict[str, Any]) -> dict[str, Any] | None:
    """Return promotion.json's entry for the champion after the decision, if there is one."""
    champion = report["decision"].get("champion")
    if champion is None:
        return None
    for entry in [*report.get("candidates", []), report.get("previous_champion") or {}]:
        if entry.get("version") == champion:
            return dict(entry)
    return None


def promotion_summary(report: dict[str, Any], model_tag: str | None) -> str:
    """Return the summary of a promotion report (promotion.json) and the Bento's model tag."""
    decision = report["decision"]
    lines = []
    entry = champion_entry(report)
    if entry is None:
        lines.append(f"No champion: {decision['reason']}")
    else:
        lines += [
            f"Champion: version {entry['version']} ({entry.get('readable_name') or 'unnamed'})",
            f"Decision ({decision['action']}): {decision['reason']}",
        ]
        confidence = report.get("confidence", 0.95)
        lines += ["", f"Evaluation suite, {confidence:.0%} intervals:"]
        rows = {name: row for name, row in entry.get("rows", {}).items() if "/" not in name}
        width = max((len(name) for name in rows), default=4)
        for name, row in rows.items():
            figures = "  ".join(f"{title} {_figure(row, key)}" for key, title in SUMMARY_METRICS)
            lines.append(f"  {name:<{width}}  n={row.get('n', math.nan):.0f}  {figures}")
    if model_tag:
        lines += ["", f"Bento model: {model_tag}"]
    lines += ["", "Next:"]
    width = max(len(command) for command, _ in NEXT_STEPS)
    lines += [f"  {command:<{width}}  # {why}" for command, why in NEXT_STEPS]
    return "\n".join(lines)
