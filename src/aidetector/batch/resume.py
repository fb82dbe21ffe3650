"""The images one model version has already scored: what a rerun skips.

Held as a sorted array of raw 32-byte digests (32 MB per million images), which forked
DataLoader workers share and Ray passes to its tasks without copying per file.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DIGEST_BYTES = 32


class ScoredImages:
    """A set of image sha256 digests with binary-search membership."""

    def __init__(self, sha256s: Iterable[str] = ()) -> None:
        digests = sorted({bytes.fromhex(sha) for sha in sha256s})
        self.digests = np.array(digests, dtype=f"S{DIGEST_BYTES}")

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, sha256: object) -> bool:
        if not isinstance(sha256, str) or not len(self.digests):
            return False
        digest = np.array(bytes.fromhex(sha256), dtype=f"S{DIGEST_BYTES}")
        index = int(np.searchsorted(self.digests, digest))
        return index < len(self.digests) and self.digests[index] == digest
