"""One forward pass gives calibrated P(FAKE) and the probe features of the domain check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aidetector.inference import (
    collect_features_and_logits,
    predict_outputs,
    predict_prob_fake,
    probe_features,
    run_batch,
)
from aidetector.models.domain import DomainProfile, FeatureGaussian, SizeRange
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing, arrays_to_batch
from conftest import TINY_VIT_SPEC

SIZE = 32
RESNET_SPEC = {"arch": "resnet18", "img_size": SIZE, "num_classes": 2, "pretrained": False}


def tiny_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def network_for(spec: dict[str, object]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(**spec).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    return network_for(RESNET_SPEC)


RESNET_DIMS = {"low_level": 2 * 64, "penultimate": 512}


def random_gaussian(
    feature_dim: int, threshold: float, generator: torch.Generator
) -> FeatureGaussian:
    means = torch.randn(2, feature_dim, generator=generator)
    root = torch.randn(feature_dim, feature_dim, generator=generator) / feature_dim
    precision = root @ root.T + torch.eye(feature_dim)
    return FeatureGaussian(means, precision, threshold)


def random_profile(dims: dict[str, int]) -> DomainProfile:
    generator = torch.Generator().manual_seed(1)
    probes = {
        name: random_gaussian(dim, threshold, generator)
        for (name, dim), threshold in zip(dims.items(), (3.0, 10.0), strict=False)
    }
    return DomainProfile(probes, SizeRange(32, 32, 2.0), 99.0)


def manual_distance(features: torch.Tensor, probe: FeatureGaussian) -> torch.Tensor:
    centred = features[:, None, :] - probe.class_means[None]  # (N, classes, D)
    squared = torch.einsum("ncd,de,nce->nc", centred, probe.precision, centred)
    return squared.min(dim=1).values.sqrt()


@pytest.mark.parametrize("spec", [RESNET_SPEC, TINY_VIT_SPEC], ids=["resnet18", "vit_tiny"])
def test_probe_features_give_the_logits_of_the_plain_forward_pass(
    spec: dict[str, object],
) -> None:
    network = network_for(spec)
    inputs = Preprocessing(image_size=SIZE)(arrays_to_batch(tiny_images(3)))
    with torch.inference_mode():
        features, logits = probe_features(network, inputs)
        expected = network(inputs)
    torch.testing.assert_close(logits, expected)
    assert set(features) == {"low_level", "penultimate"}
    assert features["penultimate"].shape == (3, network.num_features)  # type: ignore[union-attr]
    channels = network.feature_info[0]["num_chs"]  # type: ignore[index]
    assert features["low_level"].shape == (3, 2 * channels)
    # The second half holds standard deviations: never negative.
    assert bool((features["low_level"][:, channels:] >= 0).all())


def test_resnet_probes_are_the_stem_statistics_and_the_pooled_last_feature_map(
    resnet: torch.nn.Module,
) -> None:
    network = resnet
    inputs = Preprocessing(image_size=SIZE)(arrays_to_batch(tiny_images(3)))
    with torch.inference_mode():
        features, _ = probe_features(network, inputs)
        stem = network.act1(network.bn1(network.conv1(inputs)))  # type: ignore[operator]
        pooled = network.forward_features(inputs).mean(dim=(2, 3))  # type: ignore[operator]
    statistics = torch.cat([stem.mean(dim=(2, 3)), stem.std(dim=(2, 3), correction=0)], dim=1)
    torch.testing.assert_close(features["low_level"], statistics)
    torch.testing.assert_close(features["penultimate"], pooled)


def test_collect_features_and_logits_batches_give_each_probe_and_the_logits(
    resnet: torch.nn.Module,
) -> None:
    network = resnet
    preprocessing = Preprocessing(image_size=SIZE)
    images = tiny_images(5)
    features, logits = collect_features_and_logits(network, preprocessing, images, batch_size=2)
    with torch.inference_mode():
        expected, expected_logits = probe_features(network, preprocessing(arrays_to_batch(images)))
    assert set(features) == set(RESNET_DIMS)
    for name, dim in RESNET_DIMS.items():
        assert features[name].dtype == np.float32 and features[name].shape == (5, dim)
        np.testing.assert_allclose(features[name], expected[name].numpy(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-5)


def test_run_batch_with_temperature_and_domain_equals_the_manual_computation(
    resnet: torch.nn.Module,
) -> None:
    network = resnet
    preprocessing = Preprocessing(image_size=SIZE)
    batch = arrays_to_batch(tiny_images(4))
    profile = random_profile(RESNET_DIMS)
    temperature = 2.5

    prob_fake, score = run_batch(network, preprocessing, batch, temperature, profile, fake_index=1)

    with torch.inference_mode():
        inputs = preprocessing(batch)
        logits = network(inputs)
        stem = network.act1(network.bn1(network.conv1(inputs)))  # type: ignore[operator]
        features = {
            "low_level": torch.cat(
                [stem.mean(dim=(2, 3)), stem.std(dim=(2, 3), correction=0)], dim=1
            ),
            "penultimate": network.forward_features(inputs).mean(dim=(2, 3)),  # type: ignore[operator]
        }
    torch.testing.assert_close(prob_fake, (logits / temperature).softmax(dim=1)[:, 1])
    ratios = torch.stack(
        [
            manual_distance(features[name], probe) / probe.threshold
            for name, probe in profile.probes.items()
        ],
        dim=1,
    )
    assert score is not None
    torch.testing.assert_close(score, ratios.max(dim=1).values, rtol=1e-4, atol=1e-4)


def test_run_batch_without_domain_has_no_score_and_temperature_one_is_plain_softmax(
    resnet: torch.nn.Module,
) -> None:
    network = resnet
    preprocessing = Preprocessing(image_size=SIZE)
    batch = arrays_to_batch(tiny_images(2))
    prob_fake, score = run_batch(network, preprocessing, batch, fake_index=1)
    with torch.inference_mode():
        expected = network(preprocessing(batch)).softmax(dim=1)[:, 1]
    assert score is None
    torch.testing.assert_close(prob_fake, expected)


def test_predict_outputs_batches_give_the_same_answers_as_one_batch(
    resnet: torch.nn.Module,
) -> None:
    network = resnet
    preprocessing = Preprocessing(image_size=SIZE)
    images = tiny_images(3)
    profile = random_profile(RESNET_DIMS)
    whole = predict_outputs(network, preprocessing, images, 3, 2.0, profile, fake_index=1)
    pieces = predict_outputs(network, preprocessing, images, 2, 2.0, profile, fake_index=1)
    np.testing.assert_allclose(pieces.prob_fake, whole.prob_fake, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pieces.distance, whole.distance, rtol=1e-4)
    plain = predict_outputs(network, preprocessing, images, 2, fake_index=1)
    assert np.isnan(plain.distance).all() and plain.distance.shape == (3,)
    np.testing.assert_allclose(
        predict_prob_fake(network, preprocessing, images, 2, 2.0, fake_index=1),
        whole.prob_fake,
        atol=1e-6,
    )
