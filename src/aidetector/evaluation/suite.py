"""The evaluation suite: the sets every model is scored on, and its version hash.

A suite is the prepared test split, its robustness variants (computed on the fly from the
test images), and any number of extra named folders prepared by `aidetector prepare-set`.
Its hash names exactly those images, labels and variant recipes at one input size (and, in
crop mode, that mode: the stored squares are then native-resolution, preprocessing.py):
scores with the same suite hash are comparable, scores with different hashes are not.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from aidetector.config.schema import RunConfig, VariantConfig
from aidetector.data.evalset import load_eval_set
from aidetector.data.prepared import SplitMeta, load_split, read_manifest, read_split_meta
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.preprocessing import resize_to_array

TEST_SET = "test"
# Set names become metric names (MLflow, DVC): keep them plain.
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VariantKind = Literal["jpeg", "rescale", "center_crop"]


@dataclass(frozen=True)
class VariantSpec:
    """A robustness variant of the test split: JPEG re-encoding, rescaling or a centre crop."""

    name: str
    kind: VariantKind
    quality: int = 75  # jpeg
    factor: float = 0.5  # rescale: down to factor x size, then back up
    fraction: float = 0.875  # center_crop: keep this fraction of each side, then resize back

    def __post_init__(self) -> None:
        if self.kind not in ("jpeg", "rescale", "center_crop"):
            raise AidetectorError(
                f"suite variant {self.name!r} has kind {self.kind!r}; "
                "use jpeg, rescale or center_crop"
            )
        if self.kind == "jpeg" and not 1 <= self.quality <= 100:
            raise AidetectorError(f"suite variant {self.name!r}: quality must be 1-100")
        if self.kind == "rescale" and not 0 < self.factor < 1:
            raise AidetectorError(f"suite variant {self.name!r}: factor must be in (0, 1)")
        if self.kind == "center_crop" and not 0 < self.fraction <= 1:
            raise AidetectorError(f"suite variant {self.name!r}: fraction must be in (0, 1]")

    def recipe(self) -> str:
        """Return the parameters that matter for this kind, for the suite hash."""
        value = {"jpeg": self.quality, "rescale": self.factor, "center_crop": self.fraction}
        return f"{self.kind}={value[self.kind]}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Return the variant of one HxWx3 uint8 image, at the same size."""
        size = image.shape[0]
        picture = Image.fromarray(np.ascontiguousarray(image))
        if self.kind == "jpeg":
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=self.quality)
            return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)
        if self.kind == "rescale":
            small = max(1, round(size * self.factor))
            return resize_to_array(Image.fromarray(resize_to_array(picture, small)), size)
        side = max(1, round(size * self.fraction))
        offset = (size - side) // 2
        return resize_to_array(picture.crop((offset, offset, offset + side, offset + side)), size)


@dataclass
class SuiteMember:
    """One scored set: images, labels and per-image metadata (groups, native sizes)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    meta: SplitMeta
    variant_of: str | None = None


@dataclass
class Suite:
    """Everything a model is scored on, at one input size, named by its hash."""

    image_size: int
    classes: tuple[str, ...]
    test: SuiteMember
    sets: list[SuiteMember]
    variants: list[VariantSpec]
    hash: str
    description: dict[str, Any] = field(default_factory=dict)
    # How the stored squares were made: resize, or crop (native resolution).
    mode: str = "resize"

    def members(self) -> list[SuiteMember]:
        """Return the test split, then the extra sets (variants are scored from the test split)."""
        return [self.test, *self.sets]

    def truth(self) -> dict[str, np.ndarray]:
        """Return whether each image is FAKE, per set and variant row (variants: the test's)."""
        fake_index = ClassOrder.from_names(self.classes).fake_index
        truth = {member.name: member.labels == fake_index for member in self.members()}
        for variant in self.variants:
            truth[f"{TEST_SET}:{variant.name}"] = truth[TEST_SET]
        return truth


def variants_from_config(variants: list[VariantConfig]) -> list[VariantSpec]:
    """Build the variant specs from `evaluate.suite.variants` (keys and types already checked)."""
    specs = [VariantSpec(**variant.model_dump()) for variant in variants]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise AidetectorError(f"evaluate.suite.variants has duplicate names: {names}")
    return specs


def _split_digest(labels: np.ndarray, hashes: list[str]) -> str:
    digest = hashlib.sha256()
    for label, content_hash in zip(labels.tolist(), hashes, strict=True):
        digest.update(f"{label},{content_hash}\n".encode())
    return digest.hexdigest()


def load_suite(
    prepared_dir: Path, suite_dir: Path, set_names: list[str], variants: list[VariantSpec]
) -> Suite:
    """Load the prepared test split, the prepared extra sets and the variant recipes."""
    manifest = read_manifest(prepared_dir)
    image_size = int(manifest["image_size"])
    mode = str(manifest.get("preprocessing_mode", "resize"))
    classes = tuple(manifest["classes"])
    images, labels = load_split(prepared_dir, TEST_SET)
    test = SuiteMember(TEST_SET, images, labels, read_split_meta(prepared_dir, TEST_SET))
    parts = [
        f"image_size={image_size}",
        f"classes={','.join(classes)}",
        f"{TEST_SET}={_split_digest(labels, test.meta.hashes)}",
    ]
    if mode != "resize":  # resize suites keep the hashes they had before crop mode existed
        parts.insert(1, f"preprocessing_mode={mode}")
    description: dict[str, Any] = {
        "image_size": image_size,
        **({} if mode == "resize" else {"preprocessing_mode": mode}),
        "classes": list(classes),
        "sets": {TEST_SET: {"n": len(labels), "data_hash": manifest["data_hash"]}},
        "variants": {v.name: v.recipe() for v in variants},
    }
    members = []
    for name in sorted(set_names):
        if name == TEST_SET or not SET_NAME.fullmatch(name):
            raise AidetectorError(
                f"suite set name {name!r} is reserved or not plain: use letters, digits, "
                "'_', '-' and '.' (not 'test')"
            )
        set_dir = Path(suite_dir) / name
        if not set_dir.is_dir():
            raise AidetectorError(
                f"suite set {name!r} is not prepared ({set_dir} is missing): "
                f"run `aidetector prepare-set {name}` or `dvc repro`"
            )
        set_images, set_labels, meta, report = load_eval_set(set_dir)
        set_mode = str(report.get("preprocessing_mode", "resize"))
        if (
            set_images.shape[1] != image_size
            or set_mode != mode
            or list(report.get("classes", classes)) != list(classes)
        ):
            raise AidetectorError(
                f"suite set {name!r} was prepared at {set_images.shape[1]} px ({set_mode}) with "
                f"classes {report.get('classes')}, the test split at {image_size} px ({mode}) "
                f"with {list(classes)}: re-run `aidetector prepare-set {name}`"
            )
        members.append(SuiteMember(name, set_images, set_labels, meta))
        parts.append(f"set:{name}={report['data_hash']}")
        description["sets"][name] = {
            "n": len(set_labels),
            "data_hash": report["data_hash"],
            "root": report.get("root"),
            "overlap_with_training": report.get("overlap_with_training", 0),
        }
    parts += [f"variant:{v.name}={v.recipe()}" for v in variants]
    suite_hash = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    description["hash"] = suite_hash
    return Suite(image_size, classes, test, members, variants, suite_hash, description, mode)


def load_suite_from_config(cfg: RunConfig) -> Suite:
    """Load the suite that `evaluate.suite` and `paths` describe."""
    suite_cfg = cfg.evaluate.suite
    return load_suite(
        cfg.paths.prepared,
        cfg.paths.suite,
        list(suite_cfg.sets),
        variants_from_config(suite_cfg.variants),
    )


def apply_variant(images: np.ndarray, variant: VariantSpec) -> np.ndarray:
    """Return the variant of every image in an (N, H, W, 3) uint8 array."""
    if len(images) == 0:
        return np.asarray(images)
    return np.stack([variant.apply(image) for image in images])


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write indented, key-sorted JSON with a trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
