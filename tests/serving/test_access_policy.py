"""AccessPolicy and the key variables: which key may do what, and what refuses a start.

The served behaviour (401, 403, 429, the refusal on start-up) is in test_access.py.
"""

from __future__ import annotations

import pytest

from aidetector.config.serve import Secrets, parse_api_keys, parse_feedback_keys
from aidetector.errors import AidetectorError
from aidetector.serving.access import AccessPolicy, AccessRefusedError, Caller

OLD, NEW = "old-key-0123456789", "new-key-0123456789"
LABELLER = "labeller-key-0123456789"


def policy(api: tuple[str, ...] = (OLD, NEW), anonymous: bool = False) -> AccessPolicy:
    secrets = Secrets(api_keys=api, feedback_keys={LABELLER: "team-a"})
    return AccessPolicy.from_secrets(secrets, allow_anonymous=anonymous)


def test_api_keys_predict_and_feedback_keys_also_label() -> None:
    keys = policy()
    assert keys.identify(OLD.encode()) == keys.identify(NEW.encode()) == Caller("api", False)
    assert keys.identify(LABELLER.encode()) == Caller("team-a", True)
    assert keys.identify(b"guess-0123456789") is None
    assert keys.identify(None) is None


def test_no_api_key_refuses_unless_anonymous_is_allowed() -> None:
    with pytest.raises(AccessRefusedError, match="API_KEY is empty or unset"):
        policy(api=())
    anonymous = policy(api=(), anonymous=True)
    # Feedback keys are set, so anonymous callers may predict but not label.
    assert anonymous.identify(None) == Caller("anonymous", False)


def test_allow_anonymous_does_not_open_a_service_that_has_a_key() -> None:
    assert policy(anonymous=True).identify(None) is None


def test_key_lists_are_comma_separated_for_rotation() -> None:
    assert parse_api_keys(f" {OLD} ,{NEW},") == (OLD, NEW)
    assert parse_api_keys("") == ()
    assert parse_feedback_keys(f"a:{OLD}, b.2:{NEW}") == {OLD: "a", NEW: "b.2"}


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_api_keys, "change-me", "API_KEY entry 1 has 9 characters"),
        (parse_api_keys, f"{OLD},short", "API_KEY entry 2 has 5 characters"),
        (parse_feedback_keys, OLD, "FEEDBACK_API_KEYS entry 1 is not SOURCE:KEY"),
        (parse_feedback_keys, f"a b:{OLD}", "FEEDBACK_API_KEYS entry 1 is not SOURCE:KEY"),
        (parse_feedback_keys, "a:change-me", "FEEDBACK_API_KEYS entry 1 has 9 characters"),
    ],
)
def test_bad_keys_are_named_without_echoing_them(parse: object, text: str, message: str) -> None:
    with pytest.raises(AidetectorError, match=message) as raised:
        parse(text)  # type: ignore[operator]
    assert "change-me" not in str(raised.value) and "short" not in str(raised.value)


def test_a_refused_configuration_lets_no_one_in() -> None:
    closed = AccessPolicy.closed()
    assert closed.identify(None) is None and closed.identify(OLD.encode()) is None
