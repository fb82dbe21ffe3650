"""Serve settings: the packaged params.yaml, overridden by a ConfigMap file in Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidetector.errors import AidetectorError
from aidetector.serving.settings import OVERRIDES_ENV, load_serve_settings

PARAMS = Path(__file__).parents[2] / "params.yaml"
CONFIGMAP = Path(__file__).parents[2] / "deploy/k8s/base/serve-overrides.yaml"


def test_packaged_settings_load_without_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    settings = load_serve_settings(PARAMS)
    assert settings.max_bytes == 20 * 1024 * 1024 and settings.max_pixels == 50_000_000


def test_overrides_file_replaces_only_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "serve.yaml"
    overrides.write_text("max_batch_size: 64\ncache_ttl_s: 60\n")
    monkeypatch.setenv(OVERRIDES_ENV, str(overrides))
    settings = load_serve_settings(PARAMS)
    assert settings.max_batch_size == 64 and settings.cache_ttl_s == 60
    assert settings.max_bytes == 20 * 1024 * 1024


def test_the_kubernetes_configmap_overrides_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, str(CONFIGMAP))
    settings = load_serve_settings(PARAMS)
    assert settings.device == "auto" and settings.workers >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("max_batch_sise: 64\n", "unknown serve settings max_batch_sise"), ("- 1\n", "mapping")],
)
def test_bad_overrides_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    overrides = tmp_path / "serve.yaml"
    overrides.write_text(text)
    monkeypatch.setenv(OVERRIDES_ENV, str(overrides))
    with pytest.raises(AidetectorError, match=message):
        load_serve_settings(PARAMS)


def test_missing_overrides_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, "/nonexistent/serve.yaml")
    with pytest.raises(AidetectorError, match="file not found"):
        load_serve_settings(PARAMS)
