"""Feedback that trains: /feedback with the image writes it into the store in the REAL/FAKE
layout with a manifest line, within the upload limits, never over another file or outside
the store; and `prepare` with the store merged counts it in train, never in test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import pytest

from aidetector.cli import main
from aidetector.data.prepared import read_split_meta
from aidetector.errors import AidetectorError
from aidetector.serving.feedback_store import FeedbackStore, read_manifest

from .conftest import PROJECT_ROOT, STORE_SERVER_SETTINGS, BentoServer
from .images import RAW, encode, photo, unique_jpeg

CLASSES = ("REAL", "FAKE")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_store_names_files_by_content_and_never_overwrites(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path / "store"), CLASSES)
    data = unique_jpeg(900)
    first = store.save(sha(data), data, "JPEG", "FAKE", {"prediction": "REAL"})
    again = store.save(sha(data), data, "JPEG", "FAKE", {"prediction": "REAL"})

    assert first.path == f"FAKE/{sha(data)}.jpg" and first.created and not again.created
    assert (tmp_path / "store" / first.path).read_bytes() == data
    lines = read_manifest(str(tmp_path / "store"))
    assert [line["image_id"] for line in lines] == [sha(data)] * 2
    assert lines[0]["label"] == "FAKE" and lines[0]["prediction"] == "REAL"
    # Nothing half-written or temporary is left where prepare looks.
    assert sorted(p.name for p in (tmp_path / "store" / "FAKE").iterdir()) == [f"{sha(data)}.jpg"]


@pytest.mark.parametrize(
    ("image_id", "image_format", "label", "message"),
    [
        ("0" * 64, "JPEG", "FAKE", "not the sha256"),
        ("../../escape", "JPEG", "FAKE", "not the sha256"),
        (None, "EPS", "FAKE", "no file extension"),
        (None, "JPEG", "../REAL", "not one of"),
    ],
)
def test_the_store_refuses_what_could_escape_or_lie(
    tmp_path: Path, image_id: str | None, image_format: str, label: str, message: str
) -> None:
    store = FeedbackStore(str(tmp_path / "store"), CLASSES)
    data = unique_jpeg(901)
    with pytest.raises(AidetectorError, match=message):
        store.save(image_id or sha(data), data, image_format, label, {})
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.*"))


def test_any_fsspec_url_is_a_store() -> None:
    store = FeedbackStore("memory://feedback-test", CLASSES)
    data = unique_jpeg(902)
    try:
        stored = store.save(sha(data), data, "JPEG", "REAL", {"model_version": "7"})
        fs = fsspec.filesystem("memory")
        assert fs.cat_file(f"/feedback-test/REAL/{sha(data)}.jpg") == data
        assert read_manifest("memory://feedback-test")[0]["model_version"] == "7"
        assert stored.manifest.startswith("manifest/")
    finally:
        fsspec.filesystem("memory").rm("/feedback-test", recursive=True)


def feedback_form(
    server: BentoServer, data: bytes, label: str = "FAKE", **fields: str
) -> dict[str, object]:
    response = server.post(
        "/feedback", files={"file": ("photo.jpg", data)}, data={"label": label, **fields}
    )
    return {"status": response.status_code, **response.json()}


def test_feedback_with_the_image_round_trips_into_training(
    store_server: BentoServer, tmp_path: Path
) -> None:
    store = store_server.feedback_store
    assert store is not None
    data = encode(photo(91_000, (64, 48)), "JPEG", quality=90)
    verdict = store_server.post("/predict", data=data, headers=RAW).json()

    answer = feedback_form(store_server, data, "FAKE")

    assert answer["status"] == 200 and answer["stored"] is True
    assert answer["image_id"] == verdict["image_id"] == sha(data)
    stored = store / "FAKE" / f"{sha(data)}.jpg"
    assert stored.read_bytes() == data
    (line,) = [m for m in read_manifest(str(store)) if m["image_id"] == sha(data)]
    assert line["label"] == "FAKE" and line["prediction"] == verdict["label"]
    assert line["model_version"] == "2" and line["source"] == "labeller-a"
    assert line["timestamp"].endswith("+00:00")

    # prepare with the store merged: the image is in train, never in val or test.
    raw = tmp_path / "data"
    for class_name, first in (("REAL", 0), ("FAKE", 100)):
        for i in range(10):
            (raw / class_name).mkdir(parents=True, exist_ok=True)
            (raw / class_name / f"{i}.png").write_bytes(encode(photo(92_000 + first + i), "PNG"))
    prepared = tmp_path / "prepared"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)
        code = main(
            ["prepare", "data=folder", f"data.root={raw}", f"data.extra_roots=[{store}]",
             f"paths.prepared={prepared}"]
        )  # fmt: skip
    assert code == 0
    report = json.loads((prepared / "report.json").read_text())
    assert report["extra"]["added_to_train"]["FAKE"] >= 1
    assert report["split_counts"]["train"]["FAKE"] == 8 + report["extra"]["added_to_train"]["FAKE"]
    assert f"{store}/FAKE/{sha(data)}.jpg" in read_split_meta(prepared, "train").sources
    for split in ("val", "test"):
        assert not any(str(store) in s for s in read_split_meta(prepared, split).sources)


def test_the_same_image_again_keeps_the_file_and_adds_a_manifest_line(
    store_server: BentoServer,
) -> None:
    store = store_server.feedback_store
    assert store is not None
    data = encode(photo(91_001, (64, 48)), "JPEG", quality=90)
    store_server.post("/predict", data=data, headers=RAW)
    assert feedback_form(store_server, data, "REAL")["status"] == 200
    path = store / "REAL" / f"{sha(data)}.jpg"
    written = path.stat().st_mtime_ns
    # image_id may come along, and must then be the image's.
    assert feedback_form(store_server, data, "real", image_id=sha(data))["status"] == 200
    assert path.stat().st_mtime_ns == written
    lines = [m for m in read_manifest(str(store)) if m["image_id"] == sha(data)]
    assert [m["label"] for m in lines] == ["REAL", "REAL"]
    events = [e for e in store_server.events("feedback") if e["image_id"] == sha(data)]
    assert [e["stored_new"] for e in events] == [True, False]


def test_bad_feedback_images_are_refused_and_nothing_is_stored(store_server: BentoServer) -> None:
    store = store_server.feedback_store
    assert store is not None
    before = sorted(store.rglob("*"))
    data = encode(photo(91_002, (64, 48)), "JPEG", quality=90)
    store_server.post("/predict", data=data, headers=RAW)
    never_predicted = encode(photo(91_003, (64, 48)), "JPEG", quality=90)
    too_big = b"\xff\xd8\xff" + bytes(STORE_SERVER_SETTINGS["max_bytes"])

    cases = {
        "unknown image": (feedback_form(store_server, never_predicted), 404),
        "other image_id": (feedback_form(store_server, data, image_id=sha(b"x")), 400),
        "no label": (feedback_form(store_server, data, label=""), 400),
        "other class": (feedback_form(store_server, data, label="MAYBE"), 400),
        "over max_bytes": (feedback_form(store_server, too_big), 413),
    }
    for name, (answer, status) in cases.items():
        assert answer["status"] == status, (name, answer)
        assert "error" in answer, name
    two_files = store_server.post(
        "/feedback", files=[("a", ("a.jpg", data)), ("b", ("b.jpg", data))], data={"label": "FAKE"}
    )
    assert two_files.status_code == 422
    assert sorted(store.rglob("*")) == before


def test_feedback_without_the_image_keeps_todays_behaviour(store_server: BentoServer) -> None:
    store = store_server.feedback_store
    assert store is not None
    before = sorted(store.rglob("*"))
    verdict = store_server.post("/predict", data=unique_jpeg(903), headers=RAW).json()
    for request in (
        {"json": {"image_id": verdict["image_id"], "label": "REAL"}},
        {"files": {"label": (None, "REAL"), "image_id": (None, verdict["image_id"])}},
    ):
        response = store_server.post("/feedback", **request)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] is False
        assert response.json()["label"] == "REAL"
    assert sorted(store.rglob("*")) == before
