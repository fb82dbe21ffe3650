"""How sure a suite figure is: 95% intervals, paired differences and chance-level ECE.

Accuracy gets Wilson's score interval (closed form, scipy). F1 per class, ROC-AUC and ECE get a
percentile interval from a stratified bootstrap over images: each resample draws as many REAL
and as many FAKE images as the row holds, with replacement, from a fixed seed, so the same
outputs always give the same interval. A paired comparison of two models applies the same
resamples to both, so that what the images have in common (easy and hard ones) cancels.

Every function takes the truth as `is_fake` (bool per image) and the model's P(FAKE): the
label order of the data and of the model do not matter here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from aidetector.evaluation.calibration import ECE_BINS, confidence_bin_index

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
# Resamples per chunk: bounds the (chunk, n) weight matrix for large sets.
_CHUNK = 200
# The figures with an interval in every suite row, each with its `_low`/`_high` keys.
INTERVAL_METRICS: tuple[str, ...] = ("accuracy", "f1_real", "f1_fake", "roc_auc", "ece")

# A metric over B resamples at once: (weights (B, n), is_fake, prob_fake) -> (B,).
WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _f1(weights: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Return F1 per resample; 0 where it is undefined (no positives at all), as torchmetrics."""
    true_pos = weights @ (predicted & actual).astype(np.float64)
    false_pos = weights @ (predicted & ~actual).astype(np.float64)
    false_neg = weights @ (~predicted & actual).astype(np.float64)
    denominator = 2 * true_pos + false_pos + false_neg
    f1: np.ndarray = np.divide(
        2 * true_pos, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return f1


def weighted_accuracy(weights: np.ndarray, is_fake: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Return accuracy at threshold 0.5 per resample."""
    correct = ((prob >= 0.5) == is_fake).astype(np.float64)
    return np.asarray((weights @ correct) / weights.sum(axis=1))


def weighted_f1_fake(weights: np.ndarray, is_fake: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Return F1 with FAKE as the positive class, per resample."""
    return _f1(weights, prob >= 0.5, is_fake)


def weighted_f1_real(weights: np.ndarray, is_fake: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Return F1 with REAL as the positive class, per resample."""
    return _f1(weights, prob < 0.5, ~is_fake)


def weighted_roc_auc(weights: np.ndarray, is_fake: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Return ROC-AUC per resample: P(a FAKE image scores above a REAL one), ties count half."""
    if is_fake.all() or not is_fake.any():
        return np.full(len(weights), np.nan)
    real_scores = prob[~is_fake]
    order = np.argsort(real_scores, kind="stable")
    sorted_real = real_scores[order]
    real_weights = weights[:, ~is_fake][:, order]
    # cumulative[:, k] = total weight of the k lowest-scoring REAL images.
    cumulative = np.concatenate(
        [np.zeros((len(weights), 1)), np.cumsum(real_weights, axis=1)], axis=1
    )
    fake_scores = prob[is_fake]
    below = cumulative[:, np.searchsorted(sorted_real, fake_scores, side="left")]
    up_to = cumulative[:, np.searchsorted(sorted_real, fake_scores, side="right")]
    fake_weights = weights[:, is_fake]
    wins = (fake_weights * (below + 0.5 * (up_to - below))).sum(axis=1)
    return np.asarray(wins / (fake_weights.sum(axis=1) * real_weights.sum(axis=1)))


def weighted_ece(weights: np.ndarray, is_fake: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Return the top-label ECE (calibration.py's bins) per resample."""
    confidence = np.maximum(prob, 1.0 - prob)
    correct = ((prob >= 0.5) == is_fake).astype(np.float64)
    one_hot = np.eye(ECE_BINS)[confidence_bin_index(confidence)]
    gap = weights @ (one_hot * (correct - confidence)[:, None])  # (B, bins)
    return np.asarray(np.abs(gap).sum(axis=1) / weights.sum(axis=1))


WEIGHTED_METRICS: dict[str, WeightedMetric] = {
    "accuracy": weighted_accuracy,
    "f1_real": weighted_f1_real,
    "f1_fake": weighted_f1_fake,
    "roc_auc": weighted_roc_auc,
    "ece": weighted_ece,
}


def stratified_weights(
    is_fake: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> Iterator[np.ndarray]:
    """Yield (chunk, n) resample multiplicities; each row keeps the REAL and FAKE counts."""
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(~is_fake), np.flatnonzero(is_fake)]
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        weights = np.zeros((size, len(is_fake)))
        for members in strata:
            if len(members):
                uniform = np.full(len(members), 1.0 / len(members))
                weights[:, members] = rng.multinomial(len(members), uniform, size=size)
        yield weights


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Return Wilson's score interval of a proportion (nan, nan for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(interval.low), float(interval.high)


def metric_intervals(
    is_fake: np.ndarray,
    prob_fake: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, float]:
    """Return `<metric>_low`/`<metric>_high` for every INTERVAL_METRICS entry."""
    is_fake = np.asarray(is_fake, dtype=bool)
    prob = np.asarray(prob_fake, dtype=np.float64)
    correct = int(((prob >= 0.5) == is_fake).sum())
    low, high = wilson_interval(correct, len(is_fake), confidence)
    result = {"accuracy_low": low, "accuracy_high": high}
    bootstrapped = [name for name in INTERVAL_METRICS if name != "accuracy"]
    if not len(is_fake):
        missing = {f"{name}_{end}" for name in bootstrapped for end in ("low", "high")}
        return result | dict.fromkeys(missing, float("nan"))
    draws: dict[str, list[np.ndarray]] = {name: [] for name in bootstrapped}
    for weights in stratified_weights(is_fake, resamples, seed):
        for name in bootstrapped:
            draws[name].append(WEIGHTED_METRICS[name](weights, is_fake, prob))
    for name in bootstrapped:
        low, high = _percentiles(np.concatenate(draws[name]), confidence)
        result |= {f"{name}_low": low, f"{name}_high": high}
    return result


@dataclass(frozen=True)
class Difference:
    """A paired difference of one metric, b minus a, on the same n images, with its interval."""

    metric: str
    value: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def describe(self) -> str:
        """Return e.g. '+0.4 pp [-1.1, +1.9] on 1,996 images'."""
        return (
            f"{100 * self.value:+.1f} pp [{100 * self.low:+.1f}, {100 * self.high:+.1f}] "
            f"on {self.n:,} images"
        )


def paired_difference(
    metric: str,
    is_fake: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Difference:
    """Return metric(b) - metric(a) on the same images, with a paired stratified bootstrap."""
    compute = WEIGHTED_METRICS[metric]
    is_fake = np.asarray(is_fake, dtype=bool)
    a = np.asarray(prob_a, dtype=np.float64)
    b = np.asarray(prob_b, dtype=np.float64)
    if not a.shape == b.shape == is_fake.shape:
        raise ValueError(f"paired outputs differ in shape: {a.shape}, {b.shape}, {is_fake.shape}")
    everyone = np.ones((1, len(is_fake)))
    value = float(compute(everyone, is_fake, b)[0] - compute(everyone, is_fake, a)[0])
    draws = [
        compute(weights, is_fake, b) - compute(weights, is_fake, a)
        for weights in stratified_weights(is_fake, resamples, seed)
    ]
    low, high = _percentiles(np.concatenate(draws), confidence)
    return Difference(metric, value, low, high, len(is_fake), confidence)


def calibrated_ece_range(
    prob_fake: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Return the range of ECE a perfectly calibrated model shows on these confidences and n.

    Consistency resampling (Bröcker & Smith 2007): resample the confidences, draw each
    verdict right with probability equal to its confidence, and take the ECE. ECE is biased
    upwards at small n, so an observed ECE means miscalibration only above this range.
    """
    prob = np.asarray(prob_fake, dtype=np.float64)
    n = len(prob)
    if n == 0:
        return float("nan"), float("nan")
    confidence_of = np.maximum(prob, 1.0 - prob)
    bins = confidence_bin_index(confidence_of)
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        chosen = rng.integers(0, n, size=(size, n))
        drawn = confidence_of[chosen]
        right = rng.random((size, n)) < drawn
        flat = (np.arange(size)[:, None] * ECE_BINS + bins[chosen]).ravel()
        gap = np.bincount(flat, weights=(right - drawn).ravel(), minlength=size * ECE_BINS)
        draws.append(np.abs(gap.reshape(size, ECE_BINS)).sum(axis=1) / n)
    return _percentiles(np.concatenate(draws), confidence)
