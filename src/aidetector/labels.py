"""The detector's two classes, their label order, and the folder names that stand for them.

A detector tells REAL photographs from FAKE (AI-generated) images. Which label index each
class gets is not fixed here: the data config's `data.classes` sets it at ingest, the
prepared data's manifest.json records it, and the model directory's config.yaml
(`class_names`) carries it to evaluation, the registry, serving and the Hub card. Everything
downstream reads the order back from there.

Folders map to a class through FOLDER_ALIASES, case-insensitively, so that common public
layouts work as they are: CIFAKE (`REAL`, `FAKE`), ForenSynths (`0_real`, `1_fake`) and
GenImage (`nature`, `ai`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aidetector.errors import AidetectorError

REAL = "REAL"
FAKE = "FAKE"
# The order conf/data/_base.yaml writes; only a default for ingest called as a library.
DEFAULT_ORDER: tuple[str, str] = (REAL, FAKE)

# Folder names (compared in lower case) that hold each class's images.
FOLDER_ALIASES: dict[str, tuple[str, ...]] = {
    REAL: ("real", "0_real", "nature", "natural", "authentic", "human"),
    FAKE: ("fake", "1_fake", "ai", "ai_generated", "generated", "synthetic"),
}


def canonical_class(name: str) -> str:
    """Return REAL or FAKE for a class name or folder alias, or a clear error."""
    lowered = name.strip().lower()
    for canonical, aliases in FOLDER_ALIASES.items():
        if lowered in aliases:
            return canonical
    known = "; ".join(f"{c}: {', '.join(a)}" for c, a in FOLDER_ALIASES.items())
    raise AidetectorError(f"unknown class name {name!r}: use REAL or FAKE or an alias ({known})")


@dataclass(frozen=True)
class ClassOrder:
    """The class names in label-index order: names[i] is the class of label i."""

    names: tuple[str, str]

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ClassOrder:
        """Return the order that names give, each mapped through the alias table."""
        given = [str(name) for name in names]
        canonical = [canonical_class(name) for name in given]
        if sorted(canonical) != sorted((REAL, FAKE)):
            raise AidetectorError(
                f"classes must name REAL and FAKE once each, in label order, got {given}"
            )
        return cls((canonical[0], canonical[1]))

    @property
    def fake_index(self) -> int:
        """The label index of FAKE: the column of P(FAKE) in the model's output."""
        return self.names.index(FAKE)

    @property
    def real_index(self) -> int:
        """The label index of REAL."""
        return self.names.index(REAL)

    def label(self, prob_fake: float, threshold: float) -> str:
        """Return FAKE when prob_fake reaches threshold, REAL otherwise."""
        return FAKE if prob_fake >= threshold else REAL

    def as_list(self) -> list[str]:
        """Return the names as a list, the form config.yaml and manifest.json store."""
        return list(self.names)


def match_class_folders(subfolders: Sequence[str], order: ClassOrder) -> dict[str, list[str]]:
    """Return, per class, the subfolder names that stand for it (an alias or its own name)."""
    found: dict[str, list[str]] = {name: [] for name in order.names}
    for folder in subfolders:
        lowered = folder.lower()
        for name in order.names:
            if lowered == name.lower() or lowered in FOLDER_ALIASES[name]:
                found[name].append(folder)
    return found
