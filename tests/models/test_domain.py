"""The training-domain profile: per-probe Mahalanobis distance, the domain score, size limits,
and its file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aidetector.errors import AidetectorError
from aidetector.models.domain import (
    DOMAIN_FILE,
    PROBES,
    DomainProfile,
    FeatureGaussian,
    SizeRange,
    fit_domain_profile,
)

# Each probe has its own width, as the real ones do (2 x channels, and the classifier's input).
DIMS = {"low_level": 4, "penultimate": 6}


def blobs(n_per_class: int, seed: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Return features from two Gaussian blobs (one per class) and their labels."""
    rng = np.random.default_rng(seed)
    centres = (np.zeros(dim), np.r_[4.0, np.zeros(dim - 1)])
    features = np.concatenate([centre + rng.normal(size=(n_per_class, dim)) for centre in centres])
    labels = np.repeat([0, 1], n_per_class)
    return features.astype(np.float32), labels


def probe_blobs(n_per_class: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return blob features for both probes (the same labels) and the labels."""
    features = {}
    for offset, (name, dim) in enumerate(DIMS.items()):
        features[name], labels = blobs(n_per_class, seed * 10 + offset, dim)
    return features, labels


def as_tensors(features: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(values) for name, values in features.items()}


@pytest.fixture(scope="module")
def profile() -> DomainProfile:
    train, labels = probe_blobs(300, seed=0)
    val, _ = probe_blobs(300, seed=1)
    return fit_domain_profile(train, labels, val, native_sides=(32, 64), percentile=95.0)


def test_one_probe_is_fitted_per_feature_set(profile: DomainProfile) -> None:
    assert set(profile.probes) == set(PROBES) == set(DIMS)
    for name, probe in profile.probes.items():
        assert probe.class_means.shape == (2, DIMS[name])
        assert probe.precision.shape == (DIMS[name], DIMS[name])
        assert probe.threshold > 0
    assert profile.percentile == 95.0
    assert profile.sizes == SizeRange(32, 64, 2.0)


def test_a_single_penultimate_probe_can_be_fitted() -> None:
    dim = DIMS["penultimate"]
    train, labels = blobs(300, seed=0, dim=dim)
    val, _ = blobs(300, seed=1, dim=dim)
    single = fit_domain_profile(
        {"penultimate": train}, labels, {"penultimate": val}, native_sides=(32, 32)
    )
    assert set(single.probes) == {"penultimate"}
    near, _ = blobs(20, seed=2, dim=dim)
    scores = single.score({"penultimate": torch.from_numpy(near)})
    far_scores = single.score({"penultimate": torch.from_numpy(near + 25.0)})
    assert scores.shape == (40,) and bool((far_scores > scores.max()).all())


def test_far_points_are_farther_and_flagged_as_unlike_the_training_data(
    profile: DomainProfile,
) -> None:
    near, _ = probe_blobs(20, seed=2)
    far = {name: values + 25.0 for name, values in near.items()}
    for name, probe in profile.probes.items():
        near_distance = probe.distance(torch.from_numpy(near[name]))
        far_distance = probe.distance(torch.from_numpy(far[name]))
        assert bool((far_distance > near_distance.max()).all()), name

    near_score = profile.score(as_tensors(near))
    far_score = profile.score(as_tensors(far))
    assert bool((far_score > near_score.max()).all()) and bool((far_score > 1.0).all())
    check = profile.check(float(far_score[0]), 32, 32)
    assert not check.in_domain and check.reason_kind == "features"
    assert check.reason is not None and check.reason.startswith(
        "The image is unlike the training data: its features are "
    )
    assert "95th percentile of validation images." in check.reason
    assert profile.check(float("nan"), 32, 32).in_domain is False


def test_one_probe_far_away_is_enough_to_flag_an_input(profile: DomainProfile) -> None:
    near, _ = probe_blobs(20, seed=2)
    for name in DIMS:
        shifted = {**near, name: near[name] + 25.0}
        scores = profile.score(as_tensors(shifted))
        assert bool((scores > 1.0).all()), name
        assert not profile.check(float(scores[0]), 32, 32).in_domain


def test_the_score_is_the_largest_distance_to_threshold_ratio(profile: DomainProfile) -> None:
    fresh = as_tensors(probe_blobs(50, seed=5)[0])
    ratios = torch.stack(
        [probe.distance(fresh[name]) / probe.threshold for name, probe in profile.probes.items()],
        dim=1,
    )
    torch.testing.assert_close(profile.score(fresh), ratios.max(dim=1).values)


def test_about_the_percentile_tail_of_fresh_in_domain_points_is_flagged(
    profile: DomainProfile,
) -> None:
    fresh, _ = probe_blobs(1000, seed=3)
    for name, probe in profile.probes.items():
        distances = probe.distance(torch.from_numpy(fresh[name]))
        # percentile 95: about 5% of in-domain points lie past each probe's threshold.
        assert 0.01 <= float((distances > probe.threshold).float().mean()) <= 0.12, name
    scores = profile.score(as_tensors(fresh)).tolist()
    flagged = np.mean([not profile.check(s, None, None).in_domain for s in scores])
    # Two probes, each flagging about 5%: together about 5 to 10%.
    assert 0.02 <= flagged <= 0.2


def test_distance_is_to_the_nearest_class_mean(profile: DomainProfile) -> None:
    for probe in profile.probes.values():
        at_means = probe.distance(probe.class_means)
        torch.testing.assert_close(at_means, torch.zeros(2), atol=1e-3, rtol=0)


def test_feature_gaussian_fit_sets_the_threshold_at_the_validation_percentile() -> None:
    train, labels = blobs(300, seed=0, dim=5)
    val, _ = blobs(300, seed=1, dim=5)
    probe = FeatureGaussian.fit(train, labels, val, percentile=90.0)
    val_distance = probe.distance(torch.from_numpy(val)).numpy()
    assert probe.threshold == pytest.approx(float(np.percentile(val_distance, 90.0)))
    assert float((val_distance > probe.threshold).mean()) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize(("width", "height"), [(10, 40), (300, 64), (15, 15)])
def test_sizes_outside_the_tolerated_range_are_flagged_and_named(
    profile: DomainProfile, width: int, height: int
) -> None:
    # Trained on sides 32 to 64 px with tolerance 2: accepted sides are 16 to 128 px.
    check = profile.check(0.0, width, height)
    assert not check.in_domain and check.reason_kind == "size"
    assert check.reason is not None and f"{width}x{height} px" in check.reason
    assert "32 to 64 px" in check.reason
    assert check.reason[0].isupper() and check.reason.endswith(".")
    # The size is checked first: an input out of domain by both is named by its size.
    assert profile.check(10.0, width, height).reason_kind == "size"


def test_sizes_inside_the_range_and_unknown_sizes_pass(profile: DomainProfile) -> None:
    assert profile.check(0.0, 16, 128).in_domain
    assert profile.check(0.0, 100, 40).in_domain
    assert profile.check(0.0, None, None).in_domain
    assert profile.check(0.0, None, 5000).in_domain
    assert SizeRange(-1, -1).check(5, 5000).in_domain  # unknown training sizes


def test_save_then_load_gives_equal_tensors_and_thresholds(
    profile: DomainProfile, tmp_path: Path
) -> None:
    section = profile.save(tmp_path)

    loaded = DomainProfile.load(tmp_path, section)

    assert section["file"] == DOMAIN_FILE and len(section["sha256"]) == 64
    assert section["probes"] == {
        name: {"threshold": probe.threshold, "feature_dim": DIMS[name]}
        for name, probe in profile.probes.items()
    }
    assert set(loaded.probes) == set(profile.probes)
    for name, probe in profile.probes.items():
        twin = loaded.probes[name]
        torch.testing.assert_close(twin.class_means, probe.class_means, atol=0, rtol=0)
        torch.testing.assert_close(twin.precision, probe.precision, atol=0, rtol=0)
        assert twin.threshold == probe.threshold
    assert loaded.sizes == profile.sizes and loaded.percentile == profile.percentile


def test_a_corrupted_or_missing_domain_file_is_refused(
    profile: DomainProfile, tmp_path: Path
) -> None:
    section = profile.save(tmp_path)
    path = tmp_path / DOMAIN_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AidetectorError, match="corrupt"):
        DomainProfile.load(tmp_path, section)
    path.unlink()
    with pytest.raises(AidetectorError, match="missing"):
        DomainProfile.load(tmp_path, section)


def test_an_incomplete_domain_section_is_refused(profile: DomainProfile, tmp_path: Path) -> None:
    section = profile.save(tmp_path)
    del section["probes"]
    with pytest.raises(AidetectorError, match="incomplete"):
        DomainProfile.load(tmp_path, section)


def test_fitting_needs_both_classes_and_validation_data() -> None:
    train, labels = probe_blobs(10, seed=4)
    one_class = {name: values[labels == 0] for name, values in train.items()}
    with pytest.raises(AidetectorError, match="both classes"):
        fit_domain_profile(one_class, labels[labels == 0], train, (32, 32))
    empty = {name: values[:0] for name, values in train.items()}
    with pytest.raises(AidetectorError, match="validation data"):
        fit_domain_profile(train, labels, empty, (32, 32))
