"""The evidence each model version carries: its metrics, tags and description."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aidetector.errors import AidetectorError

REQUIRED_EVAL_KEYS = ("accuracy", "f1_fake", "fp16_accuracy", "fp16_f1_fake", "fp16_accuracy_delta")
# The evaluate stage measures these on the FP32 weights only. The FP16 version reports the
# FP32 value (recorded in the tag `metrics_measured_on_fp32`) unless an fp16_<key> exists.
FP16_FROM_FP32 = ("roc_auc", "latency_ms_mean", "latency_ms_p95", "num_params", "n")
METRIC_TAG_PREFIX = "metric."


@dataclass(frozen=True)
class Provenance:
    """Where a trained model came from: code version, data and the resolved run config."""

    git_commit: str
    data_name: str
    resolved_config: dict[str, Any]


def git_commit(cwd: Path | None = None) -> str:
    """Return the current git commit, or 'unknown' outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def read_eval_metrics(path: Path) -> dict[str, float]:
    """Return the evaluate stage's flat metrics.json, checking the keys registration needs."""
    if not path.is_file():
        raise AidetectorError(f"no evaluation metrics at {path}; run `aidetector evaluate` first")
    metrics = json.loads(path.read_text())
    missing = [key for key in REQUIRED_EVAL_KEYS if key not in metrics]
    if missing:
        raise AidetectorError(f"{path} lacks {', '.join(missing)}; re-run `aidetector evaluate`")
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def version_metrics(
    eval_metrics: dict[str, float], precision: str
) -> tuple[dict[str, float], list[str]]:
    """Return one version's test metrics and the keys that were measured on FP32 weights."""
    if precision == "fp32":
        return dict(eval_metrics), []
    metrics: dict[str, float] = {}
    borrowed: list[str] = []
    for key, value in eval_metrics.items():
        if key.startswith("fp16_"):
            continue
        if f"fp16_{key}" in eval_metrics:
            metrics[key] = eval_metrics[f"fp16_{key}"]
        elif key in FP16_FROM_FP32:
            metrics[key] = value
            if key not in ("num_params", "n"):  # the same for both precisions by definition
                borrowed.append(key)
    metrics["fp16_accuracy_delta"] = eval_metrics["fp16_accuracy_delta"]
    metrics["fp32_accuracy"] = eval_metrics["accuracy"]
    return metrics, sorted(borrowed)


def format_number(value: float) -> str:
    """Return a compact, round-trippable string for a metric tag."""
    return f"{value:.10g}"


def metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    """Return metrics as `metric.<key>` tags (the registry has no metrics of its own)."""
    return {f"{METRIC_TAG_PREFIX}{key}": format_number(value) for key, value in metrics.items()}


def describe_version(tags: dict[str, str], metrics: dict[str, float], borrowed: list[str]) -> str:
    """Return the Markdown description shown for a version in the MLflow UI."""

    def value(key: str, digits: int = 4) -> str:
        if key not in metrics:
            return "n/a"
        shown = f"{metrics[key]:.{digits}f}"
        low, high = metrics.get(f"{key}_low"), metrics.get(f"{key}_high")
        return shown if low is None or high is None else f"{shown} [{low:.4f}, {high:.4f}]"

    lines = [
        f"**{tags['readable_name']}**: {tags['model_name']} ({tags['family']}, "
        f"{tags['arch']}), {tags['precision'].upper()} safetensors weights.",
        "",
        f"Test split ({value('n', 0)} images, 95% intervals where measured): "
        f"accuracy {value('accuracy')}, F1 FAKE {value('f1_fake')}, "
        f"F1 REAL {value('f1_real')}, ROC-AUC {value('roc_auc')}, batch-1 latency "
        f"p95 {value('latency_ms_p95', 2)} ms (mean {value('latency_ms_mean', 2)} ms), "
        f"FP16 - FP32 accuracy {value('fp16_accuracy_delta')}.",
        "",
        f"Data: {tags['data_name']}, data hash {tags['data_hash']}. "
        f"Code: git {tags['git_commit']}. Training run: {tags['training_run_id']}.",
    ]
    if borrowed:
        lines += ["", f"Measured on the FP32 weights by the evaluate stage: {', '.join(borrowed)}."]
    return "\n".join(lines)


def config_json(resolved_config: dict[str, Any]) -> str:
    """Return the resolved config as compact JSON for the `resolved_config` tag."""
    return json.dumps(resolved_config, sort_keys=True, separators=(",", ":"), default=str)
