"""MLflow's webhook signature, checked: HMAC-SHA256 over `delivery_id.timestamp.body`.

MLflow signs each delivery (mlflow/webhooks/delivery.py) with the webhook's secret and sends
`X-MLflow-Signature: v1,<base64 digest>` beside the delivery id and Unix timestamp it signed.
The header names are MLflow's constants, repeated here so that the receiver's image needs no
MLflow; tests/release/test_signature.py checks them, and this scheme, against the installed
MLflow. A delivery is accepted once: a fresh timestamp, and a delivery id not seen before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cachetools import TTLCache

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
MAX_DELIVERY_ID_LENGTH = 128


class SignatureError(Exception):
    """A delivery that is not MLflow's: reason is a short code, the message says what failed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: MLflow's id for it and the Unix time it was signed."""

    delivery_id: str
    timestamp: int


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value MLflow sends for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str],
    now: float,
    max_age_s: float,
) -> Delivery:
    """Return the delivery if one of secrets signed it and it is fresh; else SignatureError."""
    signature = headers.get(SIGNATURE_HEADER)
    delivery_id = headers.get(DELIVERY_ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not delivery_id or not timestamp:
        missing = [
            name
            for name, value in (
                (SIGNATURE_HEADER, signature),
                (DELIVERY_ID_HEADER, delivery_id),
                (TIMESTAMP_HEADER, timestamp),
            )
            if not value
        ]
        raise SignatureError("unsigned", f"missing {', '.join(missing)}")
    if len(delivery_id) > MAX_DELIVERY_ID_LENGTH or not delivery_id.isprintable():
        raise SignatureError("malformed", f"{DELIVERY_ID_HEADER} is not a delivery id")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("malformed", f"{TIMESTAMP_HEADER} is not a Unix timestamp")
    # Several signatures may be sent space-separated (Standard Webhooks); one match is enough.
    offered = [part.encode() for part in signature.split()]
    expected = [sign(secret, delivery_id, timestamp, body).encode() for secret in secrets]
    if not any(hmac.compare_digest(o, e) for o in offered for e in expected):
        raise SignatureError("bad_signature", "the signature does not match the webhook secret")
    age = now - int(timestamp)
    if abs(age) > max_age_s:
        when = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s in the future"
        raise SignatureError(
            "stale", f"signed {when}; the tolerance is {max_age_s} s (a replay, or clock skew)"
        )
    return Delivery(delivery_id, int(timestamp))


class ReplayGuard:
    """Delivery ids accepted within the freshness window, so that none is acted on twice.

    An id is remembered for 2 x max_age_s: a delivery signed up to max_age_s in the future
    stays fresh until then, and an older one is refused as stale anyway. Only verified ids
    enter, so only the secret's holder can fill it; when full, the oldest is forgotten.
    The memory is this process's own: one receiver replica, or a shared store for more.
    """

    def __init__(
        self, max_age_s: float, maxsize: int, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=2 * max_age_s, timer=timer)
        self._lock = threading.Lock()

    def claim(self, delivery_id: str) -> bool:
        """Remember delivery_id; return False if it was already claimed."""
        with self._lock:
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = True
            return True

    def release(self, delivery_id: str) -> None:
        """Forget delivery_id, so that MLflow's retry of a delivery that failed here counts."""
        with self._lock:
            self._seen.pop(delivery_id, None)
