"""The evaluation suite: variant recipes, prepared sets, and a hash that names exactly them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetector.config.schema import VariantConfig
from aidetector.data.evalset import ingest_eval_folder, write_eval_set
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import write_prepared
from aidetector.data.splits import SplitRatios
from aidetector.errors import AidetectorError
from aidetector.evaluation.suite import (
    TEST_SET,
    VariantSpec,
    apply_variant,
    load_suite,
    variants_from_config,
)

SIZE = 32
CLASSES = ("REAL", "FAKE")
EXTRA_SET = "xsrc"
VARIANTS = [
    VariantSpec("jpeg_q75", "jpeg", quality=75),
    VariantSpec("half_size", "rescale", factor=0.5),
]


def save_png(path: Path, seed: int, side: int) -> None:
    """Save a random RGB PNG of side x side pixels (distinct seeds give distinct images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")


def prepare_test_split(root: Path, out_dir: Path, extra_test_image: bool = False) -> Path:
    """Ingest ROOT/{train,test}/{REAL,FAKE} of 40 px PNGs into out_dir; return out_dir."""
    for split, count in (("train", 3), ("test", 3)):
        for label, name in enumerate(CLASSES):
            for i in range(count):
                save_png(root / split / name / f"{i}.png", 1000 * label + 100 * len(split) + i, 40)
    if extra_test_image:
        save_png(root / "test" / "REAL" / "extra.png", 9999, 40)
    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.8, 0.2, 0.0), seed=0)
    write_prepared(dataset, out_dir)
    return out_dir


def prepare_extra_set(root: Path, suite_dir: Path, name: str = EXTRA_SET, side: int = 40) -> Path:
    """Prepare an extra set with REAL/ photos and FAKE/genA, FAKE/genB sources under suite_dir."""
    for i in range(3):
        save_png(root / "REAL" / f"r{i}.png", 5000 + i, side)
    for group, first in (("genA", 6000), ("genB", 7000)):
        for i in range(2):
            save_png(root / "FAKE" / group / f"{i}.png", first + i, side)
    eval_set = ingest_eval_folder(name, root, SIZE, CLASSES, set())
    write_eval_set(eval_set, suite_dir / name)
    return suite_dir


def prepare_suite_dirs(tmp_path: Path, extra_side: int = 40) -> tuple[Path, Path]:
    """Return (prepared dir, suite dir) with a 6-image test split and one extra set, xsrc."""
    prepared = prepare_test_split(tmp_path / "raw", tmp_path / "prepared")
    suite_dir = prepare_extra_set(tmp_path / "raw_xsrc", tmp_path / "suite", side=extra_side)
    return prepared, suite_dir


@pytest.fixture(scope="module")
def suite_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return prepare_suite_dirs(tmp_path_factory.mktemp("suite"))


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_jpeg_changes_pixels_but_keeps_the_shape() -> None:
    image = noise()
    varied = VariantSpec("jpeg_q50", "jpeg", quality=50).apply(image)
    assert varied.shape == image.shape and varied.dtype == np.uint8
    assert not np.array_equal(varied, image)


@pytest.mark.parametrize(
    "spec",
    [VariantSpec("half", "rescale", factor=0.5), VariantSpec("crop", "center_crop", fraction=0.75)],
    ids=["rescale", "center_crop"],
)
def test_rescale_and_center_crop_keep_the_shape(spec: VariantSpec) -> None:
    image = noise(1)
    varied = spec.apply(image)
    assert varied.shape == image.shape and varied.dtype == np.uint8
    assert not np.array_equal(varied, image)


def test_apply_variant_maps_every_image_and_keeps_an_empty_batch_empty() -> None:
    images = np.stack([noise(2), noise(3)])
    varied = apply_variant(images, VARIANTS[0])
    assert varied.shape == images.shape
    np.testing.assert_array_equal(varied[1], VARIANTS[0].apply(images[1]))
    assert apply_variant(images[:0], VARIANTS[0]).shape[0] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "blur"}, "use jpeg, rescale or center_crop"),
        ({"kind": "jpeg", "quality": 0}, "quality must be 1-100"),
        ({"kind": "rescale", "factor": 1.0}, "factor must be in"),
        ({"kind": "center_crop", "fraction": 0.0}, "fraction must be in"),
    ],
)
def test_invalid_variant_specs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AidetectorError, match=message):
        VariantSpec("bad", **kwargs)  # type: ignore[arg-type]


def test_variants_from_config_reads_a_list_of_mappings() -> None:
    variants = [
        VariantConfig(name="jpeg_q75", kind="jpeg", quality=75),
        VariantConfig(name="crop", kind="center_crop"),
    ]
    specs = variants_from_config(variants)
    assert [s.recipe() for s in specs] == ["jpeg=75", "center_crop=0.875"]
    assert variants_from_config([]) == []


def test_variants_from_config_refuses_duplicate_names() -> None:
    # Unknown keys and a missing kind never get here: the config schema refuses them.
    with pytest.raises(AidetectorError, match="duplicate names"):
        variants_from_config(
            [VariantConfig(name="a", kind="jpeg"), VariantConfig(name="a", kind="rescale")]
        )


def test_load_suite_holds_the_test_split_and_the_extra_set_with_its_sources(
    suite_dirs: tuple[Path, Path],
) -> None:
    prepared, suite_dir = suite_dirs
    suite = load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS)

    assert (suite.image_size, suite.classes) == (SIZE, CLASSES)
    assert [m.name for m in suite.members()] == [TEST_SET, EXTRA_SET]
    assert suite.test.images.shape == (6, SIZE, SIZE, 3)
    extra = suite.sets[0]
    assert sorted(set(extra.meta.groups)) == ["", "genA", "genB"]
    assert extra.labels.tolist().count(1) == 4
    assert suite.description["variants"] == {"jpeg_q75": "jpeg=75", "half_size": "rescale=0.5"}
    assert suite.description["sets"][EXTRA_SET]["n"] == 7
    assert suite.description["hash"] == suite.hash


def test_suite_hash_is_stable_across_loads(suite_dirs: tuple[Path, Path]) -> None:
    prepared, suite_dir = suite_dirs
    first = load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS)
    again = load_suite(prepared, suite_dir, [EXTRA_SET], list(VARIANTS))
    assert first.hash == again.hash and len(first.hash) == 64


def test_suite_hash_changes_with_a_variant_recipe_or_an_extra_set(
    suite_dirs: tuple[Path, Path],
) -> None:
    prepared, suite_dir = suite_dirs
    base = load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS).hash
    other_quality = [VariantSpec("jpeg_q75", "jpeg", quality=50), VARIANTS[1]]
    assert load_suite(prepared, suite_dir, [EXTRA_SET], other_quality).hash != base
    assert load_suite(prepared, suite_dir, [], VARIANTS).hash != base


def test_suite_hash_changes_when_the_test_split_changes(
    tmp_path: Path, suite_dirs: tuple[Path, Path]
) -> None:
    prepared, suite_dir = suite_dirs
    changed = prepare_test_split(tmp_path / "raw", tmp_path / "prepared", extra_test_image=True)
    assert (
        load_suite(changed, suite_dir, [EXTRA_SET], VARIANTS).hash
        != load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS).hash
    )


def test_a_missing_set_folder_says_how_to_prepare_it(suite_dirs: tuple[Path, Path]) -> None:
    prepared, suite_dir = suite_dirs
    with pytest.raises(AidetectorError, match=r"suite set 'nowhere' is not prepared.*prepare-set"):
        load_suite(prepared, suite_dir, ["nowhere"], VARIANTS)


def test_reserved_set_names_are_refused(suite_dirs: tuple[Path, Path]) -> None:
    prepared, suite_dir = suite_dirs
    for name in (TEST_SET, "a+b"):
        with pytest.raises(AidetectorError, match="reserved"):
            load_suite(prepared, suite_dir, [name], VARIANTS)


def test_a_set_prepared_at_another_size_is_refused(tmp_path: Path) -> None:
    prepared = prepare_test_split(tmp_path / "raw", tmp_path / "prepared")
    eval_root = tmp_path / "raw_small"
    save_png(eval_root / "REAL" / "r.png", 1, 20)
    save_png(eval_root / "FAKE" / "f.png", 2, 20)
    small = ingest_eval_folder("small", eval_root, 16, CLASSES, set())
    write_eval_set(small, tmp_path / "suite" / "small")
    with pytest.raises(AidetectorError, match="re-run `aidetector prepare-set small`"):
        load_suite(prepared, tmp_path / "suite", ["small"], [])


def test_a_crop_mode_suite_has_its_own_hash_and_refuses_a_resize_set(tmp_path: Path) -> None:
    prepared = prepare_test_split(tmp_path / "raw", tmp_path / "prepared")
    resize_suite = load_suite(prepared, tmp_path / "suite", [], [])
    crop = ingest_image_folder(tmp_path / "raw", SIZE, SplitRatios(0.8, 0.2, 0.0), 0, mode="crop")
    write_prepared(crop, tmp_path / "prepared_crop")
    crop_suite = load_suite(tmp_path / "prepared_crop", tmp_path / "suite", [], [])
    assert (crop_suite.mode, resize_suite.mode) == ("crop", "resize")
    assert crop_suite.hash != resize_suite.hash
    # 40 px PNGs, 32 px squares: the centre, not a resize.
    source = Image.open(tmp_path / "raw" / "test" / "REAL" / "0.png")
    np.testing.assert_array_equal(crop_suite.test.images[0], np.asarray(source)[4:36, 4:36])
    prepare_extra_set(tmp_path / "raw_xsrc", tmp_path / "suite")  # resize mode
    with pytest.raises(AidetectorError, match=r"\(resize\).*\(crop\)"):
        load_suite(tmp_path / "prepared_crop", tmp_path / "suite", [EXTRA_SET], [])
