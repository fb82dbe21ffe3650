"""MLflow's webhook signature: the receiver's check agrees with the installed MLflow, and
refuses unsigned, wrongly signed, stale and replayed deliveries."""

from __future__ import annotations

import pytest
from mlflow.webhooks import constants
from mlflow.webhooks.delivery import _generate_hmac_signature

from aidetector.release import signature
from aidetector.release.signature import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    SignatureError,
    sign,
    verify,
)

SECRET = "s" * 32
NOW = 1_800_000_000
BODY = b'{"entity": "model_version_alias", "action": "created", "data": {}}'


def headers(secret: str = SECRET, delivery_id: str = "d-1", timestamp: int = NOW) -> dict[str, str]:
    return {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, delivery_id, str(timestamp), BODY),
    }


def test_header_names_and_version_are_mlflows() -> None:
    # The receiver repeats them so that its image needs no MLflow; this pins them.
    assert signature.SIGNATURE_HEADER == constants.WEBHOOK_SIGNATURE_HEADER
    assert signature.TIMESTAMP_HEADER == constants.WEBHOOK_TIMESTAMP_HEADER
    assert signature.DELIVERY_ID_HEADER == constants.WEBHOOK_DELIVERY_ID_HEADER
    assert signature.SIGNATURE_VERSION == constants.WEBHOOK_SIGNATURE_VERSION


def test_signature_is_the_one_mlflow_computes() -> None:
    assert sign(SECRET, "d-1", str(NOW), BODY) == _generate_hmac_signature(
        SECRET, "d-1", str(NOW), BODY.decode()
    )


def test_a_fresh_signed_delivery_verifies() -> None:
    delivery = verify(BODY, headers(), [SECRET], now=NOW + 5, max_age_s=300)
    assert (delivery.delivery_id, delivery.timestamp) == ("d-1", NOW)


def test_any_of_the_rotated_secrets_verifies() -> None:
    assert verify(BODY, headers(), ["n" * 32, SECRET], now=NOW, max_age_s=300)


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_ID_HEADER])
def test_an_unsigned_delivery_is_refused(missing: str) -> None:
    sent = {k: v for k, v in headers().items() if k != missing}
    with pytest.raises(SignatureError, match=missing) as error:
        verify(BODY, sent, [SECRET], now=NOW, max_age_s=300)
    assert error.value.reason == "unsigned"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("secret", "bad_signature"),
        ("body", "bad_signature"),
        ("delivery_id", "bad_signature"),
        ("timestamp", "bad_signature"),
        ("timestamp_text", "malformed"),
    ],
)
def test_a_wrongly_signed_delivery_is_refused(change: str, reason: str) -> None:
    sent, body = headers(), BODY
    if change == "secret":
        sent = headers(secret="x" * 32)
    elif change == "body":
        body = BODY.replace(b"created", b"deleted")
    elif change == "delivery_id":
        sent[DELIVERY_ID_HEADER] = "d-2"
    elif change == "timestamp":
        sent[TIMESTAMP_HEADER] = str(NOW + 1)  # signed for NOW: a moved timestamp fails
    else:
        sent[TIMESTAMP_HEADER] = "yesterday"
    with pytest.raises(SignatureError) as error:
        verify(body, sent, [SECRET], now=NOW, max_age_s=300)
    assert error.value.reason == reason


@pytest.mark.parametrize(("offset", "word"), [(301, "ago"), (-301, "future")])
def test_a_correctly_signed_but_stale_delivery_is_refused(offset: int, word: str) -> None:
    with pytest.raises(SignatureError, match=word) as error:
        verify(BODY, headers(), [SECRET], now=NOW + offset, max_age_s=300)
    assert error.value.reason == "stale"


def test_replay_guard_accepts_an_id_once_and_again_after_release() -> None:
    guard = ReplayGuard(max_age_s=300, maxsize=10)
    assert guard.claim("d-1")
    assert not guard.claim("d-1")
    guard.release("d-1")  # the dispatch failed: MLflow's retry must count
    assert guard.claim("d-1")


def test_replay_guard_is_bounded_and_forgets_after_twice_the_window() -> None:
    clock = [0.0]
    guard = ReplayGuard(max_age_s=300, maxsize=3, timer=lambda: clock[0])
    for name in ("a", "b", "c", "d"):
        assert guard.claim(name)
    assert guard.claim("a"), "full: the oldest id was forgotten first"
    clock[0] = 599.0
    assert not guard.claim("d")
    clock[0] = 601.0
    assert guard.claim("d")
