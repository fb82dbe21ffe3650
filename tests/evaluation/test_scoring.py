"""score_model: one table of rows (sets, variants, sources), each with the same metrics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_suite import EXTRA_SET, SIZE, VARIANTS, prepare_suite_dirs

from aidetector.evaluation.scoring import (
    ROW_METRICS,
    SuiteMismatchError,
    SuiteScores,
    score_model,
)
from aidetector.evaluation.suite import Suite, load_suite
from aidetector.inference import collect_features_and_logits
from aidetector.models.artifact import LoadedModel
from aidetector.models.domain import DomainProfile, fit_domain_profile
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing

CONFIG = {"precision": "fp32", "class_names": ["REAL", "FAKE"]}
FAST = {"batch_size": 16, "latency_samples": 2, "latency_warmup": 1}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    # The extra set's images are 100 px: outside what a model trained on 40 px accepts.
    prepared, suite_dir = prepare_suite_dirs(tmp_path_factory.mktemp("scoring"), extra_side=100)
    return load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS)


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(arch="resnet18", img_size=SIZE).eval()


@pytest.fixture(scope="module")
def profile(network: torch.nn.Module, suite: Suite) -> DomainProfile:
    """A domain profile fitted on the test split's features, of 40 px native images."""
    preprocessing = Preprocessing(image_size=SIZE)
    features, _ = collect_features_and_logits(network, preprocessing, suite.test.images)
    return fit_domain_profile(features, suite.test.labels, features, native_sides=(40, 40))


@pytest.fixture(scope="module")
def scores(network: torch.nn.Module, suite: Suite, profile: DomainProfile) -> SuiteScores:
    loaded = LoadedModel(network, Preprocessing(image_size=SIZE), dict(CONFIG), domain=profile)
    return score_model(loaded, suite, **FAST)


def test_rows_cover_test_each_variant_the_extra_set_and_its_sources(
    scores: SuiteScores, suite: Suite
) -> None:
    assert set(scores.rows) == {
        "test",
        "test:jpeg_q75",
        "test:half_size",
        EXTRA_SET,
        f"{EXTRA_SET}/FAKE/genA",
        f"{EXTRA_SET}/FAKE/genB",
    }
    assert scores.suite_hash == suite.hash
    for name, row in scores.rows.items():
        assert tuple(row) == ROW_METRICS, name
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["ece"] <= 1.0, name


def test_counts_and_accuracy_drops_are_relative_to_the_clean_test_split(
    scores: SuiteScores,
) -> None:
    rows = scores.rows
    assert rows["test"]["accuracy_drop"] == 0.0
    assert rows["test"]["n"] == 6.0 and rows["test:jpeg_q75"]["n"] == 6.0
    assert rows[EXTRA_SET]["n"] == 7.0
    # A source row counts its own images; its other metrics pit them against the REAL ones.
    assert rows[f"{EXTRA_SET}/FAKE/genA"]["n"] == 2.0
    for row in rows.values():
        assert row["accuracy_drop"] == pytest.approx(rows["test"]["accuracy"] - row["accuracy"])


def test_model_figures_and_raw_test_outputs_are_kept(scores: SuiteScores) -> None:
    model = scores.model
    assert model["temperature"] == 1.0
    assert abs(model["fp16_accuracy_delta"]) <= 1 / 6 + 1e-9
    assert model["latency_ms_p95"] > 0
    assert scores.test_prob_fake.shape == (6,)
    assert sum(b["count"] for b in scores.reliability) == 6
    assert set(scores.to_dict()) == {"suite_hash", "rows", "model", "reliability"}


def test_a_model_with_another_input_size_cannot_be_scored(
    network: torch.nn.Module, suite: Suite
) -> None:
    other_size = LoadedModel(network, Preprocessing(image_size=SIZE * 2), dict(CONFIG))
    with pytest.raises(SuiteMismatchError, match=f"{SIZE * 2} px inputs"):
        score_model(other_size, suite, **FAST)
    # Same stored side, other mode: resized squares are not what a crop model was trained on.
    crop = Preprocessing(image_size=SIZE // 2, mode="crop", store_size=SIZE, inference_crops=5)
    with pytest.raises(SuiteMismatchError, match="mode is crop but the suite was prepared in"):
        score_model(LoadedModel(network, crop, dict(CONFIG)), suite, **FAST)


def test_a_model_trained_with_the_other_class_order_scores_the_same(
    network: torch.nn.Module, suite: Suite, scores: SuiteScores, profile: DomainProfile
) -> None:
    # The same network with its two output rows swapped, saved as [FAKE, REAL]: its P(FAKE)
    # is column 0, and every row of the table must come out as before.
    swapped_network = copy.deepcopy(network)
    head = swapped_network.get_classifier()
    with torch.no_grad():
        head.weight.copy_(head.weight.flip(0))
        head.bias.copy_(head.bias.flip(0))
    swapped = LoadedModel(
        swapped_network,
        Preprocessing(image_size=SIZE),
        {**CONFIG, "class_names": ["FAKE", "REAL"]},
        domain=profile,
    )
    swapped_scores = score_model(swapped, suite, **FAST)
    np.testing.assert_allclose(swapped_scores.test_prob_fake, scores.test_prob_fake, atol=1e-6)
    for name, row in scores.rows.items():
        for key in ("accuracy", "f1_fake", "roc_auc", "ece", "flagged"):
            assert swapped_scores.rows[name][key] == pytest.approx(row[key], nan_ok=True), name


def test_a_domain_profile_flags_images_outside_the_training_sizes(scores: SuiteScores) -> None:
    rows = scores.rows
    assert all(0.0 <= row["flagged"] <= 1.0 for row in rows.values())
    # 100 px images against 40 px training images (tolerance 2): every one is flagged.
    assert rows[EXTRA_SET]["flagged"] == 1.0
    assert rows[f"{EXTRA_SET}/FAKE/genB"]["flagged"] == 1.0
    # The test split is what the profile was fitted on: at most one of six is past the 99th
    # percentile of its own distances.
    assert rows["test"]["flagged"] <= 1 / 6


def test_every_row_has_intervals_and_every_set_and_variant_keeps_its_outputs(
    scores: SuiteScores, suite: Suite
) -> None:
    for name, row in scores.rows.items():
        for metric in ("accuracy", "f1_real", "f1_fake", "ece"):
            assert row[f"{metric}_low"] <= row[f"{metric}_high"], (name, metric)
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"], name
        assert row["ece_calibrated_high"] > 0, name
    # Per-image P(FAKE) for the paired comparisons of promotion: sets and variants only.
    assert set(scores.outputs) == {"test", "test:jpeg_q75", "test:half_size", EXTRA_SET}
    assert set(scores.outputs) == set(suite.truth())
    np.testing.assert_array_equal(scores.outputs["test"], scores.test_prob_fake)
    assert scores.outputs[EXTRA_SET].shape == suite.truth()[EXTRA_SET].shape == (7,)
    model = scores.model
    assert model["fp16_accuracy_drop"] == pytest.approx(-model["fp16_accuracy_delta"])
    assert model["fp16_accuracy_drop_low"] <= model["fp16_accuracy_drop_high"]
