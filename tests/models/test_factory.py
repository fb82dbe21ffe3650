"""The model factory: every variant builds and gives (N, 2) logits at 32 and 224 px."""

from __future__ import annotations

import pytest
import torch

from aidetector.errors import AidetectorError
from aidetector.models.factory import build_network, count_parameters, default_explain_layer

VARIANTS = {
    "resnet18": {"arch": "resnet18"},
    "vit_tiny": {"arch": "vit_tiny_patch16_224"},
    "vit_small": {"arch": "vit_small_patch16_224"},
    "vit_base": {"arch": "vit_base_patch16_224"},
}


@pytest.mark.parametrize("img_size", [32, 224])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_outputs_two_logits(variant: str, img_size: int) -> None:
    spec = dict(VARIANTS[variant])
    if variant.startswith("vit"):
        spec["patch_size"] = 4 if img_size == 32 else 16
    network = build_network(img_size=img_size, **spec).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 3, img_size, img_size))
    assert logits.shape == (2, 2)
    assert count_parameters(network) > 1_000_000


def test_vit_rejects_size_not_divisible_by_patch() -> None:
    with pytest.raises(AidetectorError, match="multiple of the patch size"):
        build_network(arch="vit_tiny_patch16_224", img_size=30, patch_size=4)


def test_resnet_rejects_too_small_images() -> None:
    with pytest.raises(AidetectorError, match="at least 32 px"):
        build_network(arch="resnet18", img_size=16)


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(AidetectorError, match=r"unknown model architecture 'vgg11'.*resnet18"):
        build_network(arch="vgg11", img_size=32)


@pytest.mark.parametrize(
    ("network", "layer"),
    [
        ({"arch": "resnet18", "img_size": 224}, "layer4"),
        ({"arch": "resnet18", "img_size": 128}, "layer4"),
        # 32 px: layer4 would be 1x1 and layer3 2x2, maps that cannot say where.
        ({"arch": "resnet18", "img_size": 32}, "layer2"),
        ({"arch": "resnet18", "img_size": 32, "stem_pool": False}, "layer3"),
        # A ViT: a saliency map of its input pixels (Grad-CAM on its tokens was unfaithful).
        ({"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 4}, "input"),
    ],
)
def test_default_explain_layer_keeps_a_map_of_at_least_four_cells_a_side(
    network: dict[str, object], layer: str
) -> None:
    assert default_explain_layer(network, depth=12) == layer


@pytest.mark.parametrize(("img_size", "patch_size"), [(32, 4), (224, 16)])
def test_conv_stem_gives_the_patch_grid_of_patchify(img_size: int, patch_size: int) -> None:
    args = {"arch": "vit_tiny_patch16_224", "img_size": img_size, "patch_size": patch_size}
    stem, patchify = build_network(**args, conv_stem=True), build_network(**args)
    assert stem.patch_embed.grid_size == patchify.patch_embed.grid_size
    convs = [m for m in stem.patch_embed.modules() if isinstance(m, torch.nn.Conv2d)]
    # log2(patch) stride-2 3x3 convolutions, then a 1x1 to the embedding width.
    assert [c.stride[0] for c in convs] == [2] * (patch_size.bit_length() - 1) + [1]
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == stem.embed_dim
    with torch.no_grad():
        assert stem.eval()(torch.randn(2, 3, img_size, img_size)).shape == (2, 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"arch": "vit_tiny_patch16_224", "patch_size": 4, "pretrained": True}, "no pretrained"),
        ({"arch": "resnet18"}, "ViTs only"),
        ({"arch": "vit_tiny_patch16_224", "patch_size": 6, "img_size": 48}, "power-of-two"),
    ],
)
def test_conv_stem_refuses_what_it_cannot_build(args: dict[str, object], message: str) -> None:
    args = {"img_size": 32, **args}
    with pytest.raises(AidetectorError, match=message):
        build_network(**args, conv_stem=True)  # type: ignore[arg-type]
