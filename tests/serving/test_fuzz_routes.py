"""A property-based HTTP fuzzer against the real server: no body, header or image is a 5xx.

Hypothesis generates raw bodies, image mutations (bit flips, truncation, spliced headers),
multipart shapes (boundaries, part headers, file names, several parts) and JSON for
/feedback, and throws them at the session's `bentoml serve`. It is derandomized, so every
CI run tries the same cases, and its number of cases is reported as a test property and on
stdout.
"""

from __future__ import annotations

import json
import string
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import BentoServer
from .images import encode, photo

ROUTES = ("/predict", "/predict_batch", "/feedback")
# About 50 s on the two-core development machine (2500 took 23 s); `make test` has a
# 15-minute budget in all.
MAX_EXAMPLES = 5000
BOUNDARY_CHARS = string.ascii_letters + string.digits + "'()+_,-./:=? "
# Latin-1 without control characters; no leading whitespace, which clients refuse to send.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
).map(str.lstrip)


def seed_images() -> list[bytes]:
    """Valid images of every accepted format: the material that mutations start from."""
    base = photo(31)
    return [
        encode(base, "JPEG", quality=80),
        encode(base, "PNG"),
        encode(base.convert("P"), "GIF"),
        encode(base, "WEBP"),
        encode(base, "BMP"),
        encode(base, "TIFF"),
        encode(base.convert("RGBA"), "PNG"),
    ]


SEEDS = seed_images()


@st.composite
def mutated_image(draw: st.DrawFn) -> bytes:
    """A valid image, then bit flips, a truncation, junk inserted or another's header."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(("flip", "truncate", "insert", "splice")))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=64))
        else:
            other = draw(st.sampled_from(SEEDS))
            data[:at] = other[:at]
    return bytes(data)


PAYLOAD = st.one_of(mutated_image(), st.binary(max_size=512))


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body and its Content-Type, well-formed or broken in one of many ways."""
    boundary = draw(st.text(BOUNDARY_CHARS, min_size=1, max_size=70).map(str.strip)) or "b"
    parts = []
    for _ in range(draw(st.integers(0, 10))):
        lines = []
        name = draw(st.one_of(st.just("files"), HEADER_TEXT))
        disposition = f'form-data; name="{name}"'
        if draw(st.booleans()):
            disposition += f'; filename="{draw(HEADER_TEXT)}"'
        if draw(st.integers(0, 9)):  # mostly present: a part without it is its own case
            lines.append(f"Content-Disposition: {disposition}")
        if draw(st.booleans()):
            lines.append(f"Content-Type: {draw(HEADER_TEXT)}")
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(HEADER_TEXT))  # not a header at all
        head = "\r\n".join(lines).encode("latin-1")
        parts.append(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + draw(PAYLOAD))
    closing = draw(st.sampled_from(("--\r\n", "--", "\r\n", "")))
    body = b"\r\n".join(parts) + (b"\r\n--" + boundary.encode() + closing.encode())
    declared = draw(st.sampled_from((boundary, boundary + "x", "")))
    content_type = draw(
        st.sampled_from(
            (
                f"multipart/form-data; boundary={declared}",
                f'multipart/form-data; boundary="{declared}"',
                f"multipart/form-data; boundary={declared}; charset={draw(HEADER_TEXT)}",
                "multipart/form-data",
            )
        )
    )
    return body, content_type


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=70),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(("image_id", "label", "x")) | st.text(max_size=8), children),
    max_leaves=12,
)


@st.composite
def feedback_body(draw: st.DrawFn) -> tuple[bytes, str]:
    """JSON (sometimes almost the right shape), deep nesting or bytes that are not UTF-8."""
    kind = draw(st.sampled_from(("json", "shaped", "nested", "bytes")))
    if kind == "json":
        body = json.dumps(draw(JSON)).encode()
    elif kind == "shaped":
        payload = {"image_id": draw(st.text("0123456789abcdef", min_size=63, max_size=65))}
        payload["label"] = draw(st.sampled_from(("REAL", "fake", "MAYBE", "")))
        body = json.dumps(payload).encode()
    elif kind == "nested":
        depth = draw(st.integers(1, 4000))
        body = draw(st.sampled_from((b"[", b'{"a":'))) * depth
    else:
        body = draw(st.binary(max_size=256))
    return body, draw(st.sampled_from(("application/json", "text/plain", "")))


@st.composite
def request_case(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """A route, a body and headers."""
    route = draw(st.sampled_from(ROUTES))
    kind = draw(st.sampled_from(("raw", "multipart", "json")))
    if kind == "multipart":
        body, content_type = draw(multipart_body())
    elif kind == "json":
        body, content_type = draw(feedback_body())
    else:
        body = draw(PAYLOAD)
        content_type = draw(
            st.sampled_from(("application/octet-stream", "image/png", "", "multipart/form-data"))
            | HEADER_TEXT
        )
    headers = {"Content-Type": content_type} if content_type else {}
    if draw(st.integers(0, 4)) == 0:
        headers[draw(st.sampled_from(("Accept", "X-Request-Id", "Content-Encoding")))] = draw(
            HEADER_TEXT
        )
    return route, body, headers


def test_no_generated_request_gets_a_5xx(
    server: BentoServer, record_property: pytest.RecordProperty
) -> None:
    session = requests.Session()
    statuses: dict[int, int] = {}
    failures: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request_case())
    def send(case: tuple[str, bytes, dict[str, str]]) -> None:
        route, body, headers = case
        response = session.post(
            server.url + route, data=body, headers=server.headers(**headers), timeout=60
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append(f"{route} {headers} {body[:120]!r}: {response.text[:200]}")
        assert response.status_code < 500, failures[-1]

    started = time.monotonic()
    send()
    seconds = time.monotonic() - started
    cases = sum(statuses.values())
    record_property("fuzz_cases", cases)
    print(f"fuzzer: {cases} requests in {seconds:.0f} s, statuses {sorted(statuses.items())}")
    assert cases >= MAX_EXAMPLES // 2, statuses  # hypothesis may stop early, not this early
    assert server.get("/livez").status_code == 200
    good = server.post("/predict", data=SEEDS[0], headers={"Content-Type": "image/jpeg"})
    assert good.status_code == 200, good.text
    assert statuses.get(200, 0) > 0  # some generated requests were good images, not all 4xx
