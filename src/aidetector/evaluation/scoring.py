"""Score one model on the evaluation suite: the table that evaluation and promotion share.

Rows are sets (`test`, an extra set's name), variants of the test split (`test:jpeg_q75`) and
sources inside a set (`xsource/FAKE/sdxl`). Every row has the same metrics, from one forward
pass per image through the one prediction path (calibrated, with the domain check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aidetector.errors import AidetectorError
from aidetector.evaluation.calibration import (
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from aidetector.evaluation.intervals import (
    INTERVAL_METRICS,
    calibrated_ece_range,
    metric_intervals,
    paired_difference,
    wilson_interval,
)
from aidetector.evaluation.latency import measure_batch1_latency
from aidetector.evaluation.metrics import classification_metrics
from aidetector.evaluation.suite import TEST_SET, Suite, SuiteMember, apply_variant
from aidetector.inference import Outputs, predict_fp16, predict_outputs
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel

# Per-row metrics, in table order. Each of INTERVAL_METRICS has a 95% interval beside it
# (`_low`, `_high`; intervals.py), and `ece_calibrated_high` is the most ECE a perfectly
# calibrated model shows by chance at this n (the promotion's calibration gate reads it).
ROW_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_drop",
    "f1_real",
    "f1_fake",
    "roc_auc",
    "ece",
    "brier",
    "flagged",
    "n",
    *(f"{name}_{end}" for name in INTERVAL_METRICS for end in ("low", "high")),
    "ece_calibrated_high",
)


class SuiteMismatchError(AidetectorError):
    """The model cannot be scored on this suite (another input size or class order)."""


@dataclass
class SuiteScores:
    """One model's suite table, plus model-level figures and the test split's raw outputs.

    outputs holds P(FAKE) per image for every set and variant row (not the per-source rows,
    which are parts of a set): promotion compares two models image by image on them.
    """

    suite_hash: str
    rows: dict[str, dict[str, float]]
    model: dict[str, float]
    test_labels: np.ndarray = field(repr=False)
    test_prob_fake: np.ndarray = field(repr=False)
    reliability: list[dict[str, float]] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (no per-image arrays)."""
        return {
            "suite_hash": self.suite_hash,
            "rows": self.rows,
            "model": self.model,
            "reliability": self.reliability,
        }


def check_compatible(loaded: LoadedModel, suite: Suite) -> None:
    """Raise SuiteMismatchError when the model takes another input size or mode.

    The label orders may differ: the model reports P(FAKE) through its own order, and the
    suite's labels are read through the suite's.
    """
    mode = loaded.preprocessing.mode
    if mode != suite.mode:
        raise SuiteMismatchError(
            f"the model's preprocessing mode is {mode} but the suite was prepared in "
            f"{suite.mode} mode"
        )
    size = loaded.preprocessing.array_size  # of the stored squares: the input in resize mode
    if size != suite.image_size:
        raise SuiteMismatchError(
            f"the model takes {size} px inputs but the suite is at {suite.image_size} px"
        )


def in_domain_mask(loaded: LoadedModel, outputs: Outputs, member: SuiteMember) -> np.ndarray:
    """Return True per image that the model's domain check accepts (all True without a profile)."""
    if loaded.domain is None:
        return np.ones(len(outputs.prob_fake), dtype=bool)
    widths, heights = member.meta.widths, member.meta.heights
    return np.array(
        [
            loaded.domain.check(
                float(distance),
                int(width) if width > 0 else None,
                int(height) if height > 0 else None,
            ).in_domain
            for distance, width, height in zip(outputs.distance, widths, heights, strict=True)
        ],
        dtype=bool,
    )


def row_metrics(
    labels: np.ndarray, prob_fake: np.ndarray, in_domain: np.ndarray, class_order: ClassOrder
) -> dict[str, float]:
    """Return one table row: accuracy, F1 per class, ROC-AUC, ECE, Brier, flagged share, n,
    with 95% intervals and the ECE range of a calibrated model."""
    base = classification_metrics(labels, prob_fake, class_order)
    fake_index = class_order.fake_index
    is_fake = np.asarray(labels) == fake_index
    return {
        "accuracy": base["accuracy"],
        "f1_real": base["f1_real"],
        "f1_fake": base["f1_fake"],
        "roc_auc": base["roc_auc"],
        "ece": expected_calibration_error(labels, prob_fake, fake_index=fake_index),
        "brier": brier_score(labels, prob_fake, fake_index=fake_index),
        "flagged": float(1.0 - in_domain.mean()) if len(in_domain) else float("nan"),
        "n": float(len(labels)),
        **metric_intervals(is_fake, prob_fake),
        "ece_calibrated_high": calibrated_ece_range(prob_fake)[1],
    }


def group_rows(
    member: SuiteMember, class_order: ClassOrder, prob_fake: np.ndarray, in_domain: np.ndarray
) -> dict[str, dict[str, float]]:
    """Return one row per source group (`SET/CLASS/group`), scored against the other class.

    A generator's row holds its images plus every image of the other classes in the set, so
    its ROC-AUC says how well that generator is told apart from the real photos.
    """
    groups = np.asarray(member.meta.groups, dtype=object)
    fake = class_order.fake_index
    rows: dict[str, dict[str, float]] = {}
    if not len(groups) or not any(groups):
        return rows
    for label, class_name in enumerate(class_order.names):
        for group in sorted({g for g, y in zip(groups, member.labels, strict=True) if y == label}):
            if not group:
                continue
            own = (member.labels == label) & (groups == group)
            chosen = own | (member.labels != label)
            row = row_metrics(
                member.labels[chosen], prob_fake[chosen], in_domain[chosen], class_order
            )
            # Accuracy and flagged describe the group's own images only.
            # (No bootstrap for them: only the accuracy's Wilson interval is needed.)
            right = int(((prob_fake[own] >= 0.5) == (member.labels[own] == fake)).sum())
            low, high = wilson_interval(right, int(own.sum()))
            row.update(
                accuracy=right / int(own.sum()),
                accuracy_low=low,
                accuracy_high=high,
                flagged=float(1.0 - in_domain[own].mean()),
                n=float(own.sum()),
            )
            rows[f"{member.name}/{class_name}/{group}"] = row
    return rows


def score_model(
    loaded: LoadedModel,
    suite: Suite,
    batch_size: int = 256,
    latency_samples: int = 100,
    latency_warmup: int = 10,
) -> SuiteScores:
    """Score a loaded model on every set, variant and source group of the suite."""
    check_compatible(loaded, suite)
    network, preprocessing = loaded.network, loaded.preprocessing
    model_fake = loaded.class_order.fake_index
    order = ClassOrder.from_names(suite.classes)

    def outputs_of(images: np.ndarray) -> Outputs:
        return predict_outputs(
            network,
            preprocessing,
            images,
            batch_size,
            loaded.temperature,
            loaded.domain,
            fake_index=model_fake,
        )

    rows: dict[str, dict[str, float]] = {}
    per_image: dict[str, np.ndarray] = {}
    test_outputs = outputs_of(suite.test.images)
    for member in suite.members():
        outputs = test_outputs if member is suite.test else outputs_of(member.images)
        mask = in_domain_mask(loaded, outputs, member)
        rows[member.name] = row_metrics(member.labels, outputs.prob_fake, mask, order)
        per_image[member.name] = outputs.prob_fake
        rows.update(group_rows(member, order, outputs.prob_fake, mask))
        if member is suite.test:
            for variant in suite.variants:
                varied = outputs_of(apply_variant(member.images, variant))
                varied_mask = in_domain_mask(loaded, varied, member)
                name = f"{TEST_SET}:{variant.name}"
                rows[name] = row_metrics(member.labels, varied.prob_fake, varied_mask, order)
                per_image[name] = varied.prob_fake
    clean = rows[TEST_SET]["accuracy"]
    for row in rows.values():
        row["accuracy_drop"] = clean - row["accuracy"]
    rows = {name: {key: row[key] for key in ROW_METRICS} for name, row in rows.items()}

    labels = suite.test.labels
    fp32_like = test_outputs.prob_fake
    images = suite.test.images
    fp16 = predict_fp16(
        network, preprocessing, images, batch_size, loaded.temperature, fake_index=model_fake
    )
    uncalibrated = predict_outputs(
        network, preprocessing, images, batch_size, fake_index=model_fake
    ).prob_fake
    fp16_metrics = classification_metrics(labels, fp16, order)
    # FP32 minus FP16 accuracy on the same images: the FP16 gate decides on its interval.
    fp16_drop = paired_difference("accuracy", labels == order.fake_index, fp16, fp32_like)
    model = {
        "temperature": loaded.temperature,
        "ece_uncalibrated": expected_calibration_error(
            labels, uncalibrated, fake_index=order.fake_index
        ),
        "fp16_accuracy": fp16_metrics["accuracy"],
        "fp16_f1_fake": fp16_metrics["f1_fake"],
        "fp16_accuracy_delta": fp16_metrics["accuracy"] - rows[TEST_SET]["accuracy"],
        "fp16_accuracy_drop": fp16_drop.value,
        "fp16_accuracy_drop_low": fp16_drop.low,
        "fp16_accuracy_drop_high": fp16_drop.high,
        **measure_batch1_latency(
            network,
            preprocessing,
            suite.test.images,
            latency_samples,
            latency_warmup,
            temperature=loaded.temperature,
            domain=loaded.domain,
            fake_index=model_fake,
        ),
    }
    return SuiteScores(
        suite_hash=suite.hash,
        rows=rows,
        model=model,
        test_labels=labels,
        test_prob_fake=fp32_like,
        reliability=reliability_bins(labels, fp32_like, fake_index=order.fake_index),
        outputs=per_image,
    )
