"""Human-readable version names, `v{major}.{minor}_{family}_{arch}_{precision}`.

major: the ordinal of the distinct trained model (identified by its FP32 weights hash)
within the registered model, in registration order: the first trained model is v1,
the next one v2, whichever architecture it has.
minor: the version's index within that trained model: FP32 is .0, FP16 is .1.

So one training run of resnet18 gives v1.0_cnn_resnet18_fp32 and v1.1_cnn_resnet18_fp16,
and a ViT-Base registered next gives v2.0_vit_base_fp32 and v2.1_vit_base_fp16.
Numbers are stored as tags, so they never change once assigned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MINOR_BY_PRECISION: dict[str, int] = {"fp32": 0, "fp16": 1}

# Tags that hold the numbering (see register.py for the full set of evidence tags).
MAJOR_TAG = "version_major"
SOURCE_SHA_TAG = "source_weights_sha256"


def short_arch(model_name: str, family: str) -> str:
    """Return the model name without a leading family: vit_base -> base, resnet18 -> resnet18."""
    prefix = f"{family}_"
    return model_name[len(prefix) :] if model_name.startswith(prefix) else model_name


def readable_name(major: int, precision: str, model_name: str, family: str) -> str:
    """Return e.g. v1.1_cnn_resnet18_fp16 for the FP16 version of the first trained model."""
    minor = MINOR_BY_PRECISION[precision]
    return f"v{major}.{minor}_{family}_{short_arch(model_name, family)}_{precision}"


def major_number(existing_tags: Iterable[Mapping[str, str]], source_sha256: str) -> int:
    """Return the major number of a trained model: its existing one, or the next free one.

    existing_tags are the tag maps of every version already in the registered model.
    """
    majors: list[int] = []
    for tags in existing_tags:
        if MAJOR_TAG not in tags:
            continue  # a version registered by something else; it takes no number
        major = int(tags[MAJOR_TAG])
        if tags.get(SOURCE_SHA_TAG) == source_sha256:
            return major
        majors.append(major)
    return max(majors, default=0) + 1
