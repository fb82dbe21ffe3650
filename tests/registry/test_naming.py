"""Readable version names and their numbering."""

from __future__ import annotations

from aidetector.registry.naming import major_number, readable_name, short_arch


def test_readable_names_follow_the_documented_form() -> None:
    assert readable_name(1, "fp32", "resnet18", "cnn") == "v1.0_cnn_resnet18_fp32"
    assert readable_name(1, "fp16", "resnet18", "cnn") == "v1.1_cnn_resnet18_fp16"
    assert readable_name(2, "fp16", "vit_base", "vit") == "v2.1_vit_base_fp16"


def test_family_prefix_is_not_repeated() -> None:
    assert short_arch("vit_tiny", "vit") == "tiny"
    assert short_arch("resnet18", "cnn") == "resnet18"


def test_a_new_trained_model_takes_the_next_major_number() -> None:
    existing = [
        {"version_major": "1", "source_weights_sha256": "aaa"},
        {"version_major": "2", "source_weights_sha256": "bbb"},
        {"unrelated": "tag"},  # registered by hand: takes no number
    ]
    assert major_number([], "aaa") == 1
    assert major_number(existing, "ccc") == 3


def test_the_same_trained_model_keeps_its_major_number() -> None:
    existing = [{"version_major": "1", "source_weights_sha256": "aaa"}]
    assert major_number(existing, "aaa") == 1
