"""Builds the detector networks (timm ResNet18 and ViT variants) from config values."""

from __future__ import annotations

from functools import partial
from typing import Any

import timm
from timm.layers import HybridEmbed
from timm.models.vision_transformer_hybrid import ConvStem
from torch import nn

from aidetector.errors import AidetectorError

# Supported architectures and the smallest input each can take.
# ResNet18 halves the resolution five times; below 32 px the last stage sees < 1 pixel.
KNOWN_ARCHS: dict[str, str] = {
    "resnet18": "cnn",
    "vit_tiny_patch16_224": "vit",
    "vit_small_patch16_224": "vit",
    "vit_base_patch16_224": "vit",
}
MIN_CNN_SIZE = 32
# A Grad-CAM map coarser than this many cells per side cannot say where anything is: a
# resnet18 at 32 px reduces its input to 1x1 by layer4, so a shallower stage is explained.
MIN_CAM_SIDE = 4
# ResNet stages and their stride with the stem's max-pool (half of it without).
RESNET_STAGE_STRIDES = (("layer4", 32), ("layer3", 16), ("layer2", 8), ("layer1", 4))
# The explain_layer that means "the input pixels": a saliency map (explain.py), not Grad-CAM.
INPUT_LAYER = "input"


def validate_network_spec(arch: str, img_size: int, patch_size: int | None = None) -> None:
    """Raise AidetectorError if the architecture is unknown or cannot take img_size."""
    if arch not in KNOWN_ARCHS:
        known = ", ".join(sorted(KNOWN_ARCHS))
        raise AidetectorError(f"unknown model architecture '{arch}'; choose one of: {known}")
    if img_size <= 0:
        raise AidetectorError(f"image size must be positive, got {img_size}")
    if KNOWN_ARCHS[arch] == "cnn" and img_size < MIN_CNN_SIZE:
        raise AidetectorError(
            f"{arch} needs images of at least {MIN_CNN_SIZE} px, got {img_size} px; "
            f"raise data.image_size"
        )
    if KNOWN_ARCHS[arch] == "vit":
        if not patch_size or patch_size <= 0:
            raise AidetectorError(f"{arch} needs a positive patch_size, got {patch_size}")
        if img_size % patch_size != 0:
            raise AidetectorError(
                f"{arch} cannot take {img_size} px images with {patch_size} px patches: "
                f"the image size must be a multiple of the patch size"
            )


def build_network(
    arch: str,
    img_size: int,
    num_classes: int = 2,
    pretrained: bool = False,
    patch_size: int | None = None,
    drop_rate: float = 0.0,
    stem_pool: bool = True,
    conv_stem: bool = False,
    name: str | None = None,
    family: str | None = None,
) -> nn.Module:
    """Return a timm classifier for arch at img_size; `name`/`family` are descriptive only.

    pretrained=True downloads ImageNet weights from the Hugging Face Hub (needs network);
    timm resamples the ViT position and patch embeddings to the requested sizes.
    stem_pool=False drops ResNet's stem max-pool: small (32 px) inputs then keep twice the
    resolution through the network, where generator artifacts live, for ~2-3x the compute.
    conv_stem=True replaces a ViT's patchify layer with a convolutional stem (see conv_stem).
    """
    validate_network_spec(arch, img_size, patch_size)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": drop_rate}
    if KNOWN_ARCHS[arch] == "vit":
        kwargs.update(img_size=img_size, patch_size=patch_size)
        if conv_stem:
            if pretrained:
                raise AidetectorError(
                    f"{arch}: conv_stem=true has no pretrained weights (they fit the patchify "
                    f"layer); set pretrained=false or conv_stem=false"
                )
            assert patch_size is not None  # validate_network_spec checked it
            kwargs.update(embed_layer=conv_stem_embed(patch_size), patch_size=1)
    elif conv_stem:
        raise AidetectorError(f"conv_stem applies to ViTs only, not {arch}")
    try:
        network = timm.create_model(arch, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as error:
        if pretrained:
            raise AidetectorError(
                f"could not load pretrained weights for {arch} ({error}); "
                f"check network access or set pretrained=false"
            ) from error
        raise
    if KNOWN_ARCHS[arch] == "cnn" and not stem_pool:
        network.maxpool = nn.Identity()
    return network


def conv_stem_embed(patch_size: int) -> Any:
    """A ViT patch embedding built from a convolutional stem (Xiao et al. 2021).

    Stride-2 3x3 convolutions with BatchNorm and ReLU down to the patch grid, then a 1x1
    convolution to the embedding width: the same tokens as patchify, but with a CNN's local
    bias. Trained from scratch on small data, a plain ViT stays at chance on the demo set.
    """
    if patch_size < 2 or patch_size & (patch_size - 1):
        raise AidetectorError(f"conv_stem needs a power-of-two patch_size, got {patch_size}")
    halvings = patch_size.bit_length() - 1

    def embed(embed_dim: int, **kwargs: Any) -> nn.Module:
        widths = tuple(max(embed_dim // 2 ** (halvings - i), 16) for i in range(halvings))
        backbone = ConvStem(
            in_chans=kwargs.get("in_chans", 3),
            depth=halvings + 1,
            channels=(*widths, embed_dim),
            kernel_size=(3,) * halvings + (1,),
            stride=(2,) * halvings + (1,),
        )
        return HybridEmbed(backbone, embed_dim=embed_dim, proj=False, **kwargs)

    return partial(embed)


def count_parameters(network: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def network_kwargs(spec: dict[str, object]) -> dict[str, object]:
    """Strip Hydra keys from a model config node, leaving build_network's arguments."""
    return {key: value for key, value in spec.items() if not key.startswith("_")}


def default_explain_layer(network_config: dict[str, Any], depth: int | None = None) -> str:
    """Return what a network config's explanations attribute to (config.yaml's `network`).

    A CNN: Grad-CAM on the deepest ResNet stage whose map has at least MIN_CAM_SIDE cells per
    side (`layer4` at 224 px; `layer2` for a 32 px resnet18). A ViT: INPUT_LAYER, a saliency
    map of the input pixels. Grad-CAM on its tokens (`blocks.<last>.norm1`, which a model
    directory may still name) was no better than random order in the deletion test on three
    of four trained ViTs, and turned with the thread count; input saliency beat random on all
    four (docs/serving.md: "Explanations"). depth (the number of ViT blocks) is kept for callers.
    """
    arch = str(network_config["arch"])
    if KNOWN_ARCHS.get(arch) == "vit":
        return INPUT_LAYER
    img_size = int(network_config["img_size"])
    pool = 1 if network_config.get("stem_pool", True) else 2
    for stage, stride in RESNET_STAGE_STRIDES:
        if img_size * pool // stride >= MIN_CAM_SIDE:
            return stage
    return "layer1"
