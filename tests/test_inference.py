"""One forward pass gives calibrated P(FAKE) and the probe features of the domain check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aidetector.inference import (
    collect_features_and_logits,
    fp16_copy,
    predict_fp16,
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


@pytest.mark.parametrize("spec", [RESNET_SPEC, TINY_VIT_SPEC], ids=["resnet18", "vit"])
def test_fp16_rounding_on_the_cpu_matches_a_pure_fp16_pass(spec: dict[str, object]) -> None:
    network = network_for(spec)
    images = tiny_images(16)
    preprocessing = Preprocessing(SIZE)
    fp32 = predict_prob_fake(network, preprocessing, images, fake_index=1)
    pure = predict_prob_fake(fp16_copy(network), preprocessing, images, fake_index=1)
    emulated = predict_fp16(network, preprocessing, images, 8, fake_index=1)
    # Both carry FP16's rounding: equal to each other within it, and not bit-equal to FP32.
    np.testing.assert_allclose(emulated, pure, atol=2e-3)
    assert not np.array_equal(emulated, fp32)
    assert next(network.parameters()).dtype == torch.float32  # the original is untouched


def test_fp16_rounding_overflows_where_fp16_would() -> None:
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE * SIZE * 3, 2))
    with torch.no_grad():
        network[1].weight.fill_(30.0)  # outputs near 1e5: finite in FP32, past FP16's 65504
    images = np.full((2, SIZE, SIZE, 3), 255, dtype=np.uint8)
    preprocessing = Preprocessing(SIZE)
    assert np.isfinite(predict_prob_fake(network, preprocessing, images, fake_index=1)).all()
    emulated = predict_fp16(network, preprocessing, images, 8, fake_index=1)
    assert not np.isfinite(emulated).any()
