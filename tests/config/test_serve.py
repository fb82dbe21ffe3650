"""Serve settings: the packaged params.yaml, overridden by a ConfigMap file in Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aidetector.config.serve import OVERRIDES_ENV, ServeSettings, load_serve_settings
from aidetector.errors import AidetectorError

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


def test_a_mistyped_override_names_the_overrides_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "serve.yaml"
    overrides.write_text("max_batch_size: lots\n")
    monkeypatch.setenv(OVERRIDES_ENV, str(overrides))
    with pytest.raises(AidetectorError) as error:
        load_serve_settings(PARAMS)
    assert str(error.value) == (
        f"{overrides}: serve.max_batch_size: expected a valid integer, got 'lots'"
    )


def test_a_mistyped_packaged_setting_names_params_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("access_log: false", "access_log: 'no'"))
    with pytest.raises(
        AidetectorError, match=r"params\.yaml: serve\.access_log: expected a valid boolean"
    ):
        load_serve_settings(params)


def test_floats_take_integers_and_formats_are_upper_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "serve.yaml"
    overrides.write_text("threshold: 1\nformats: [jpeg, png]\n")
    monkeypatch.setenv(OVERRIDES_ENV, str(overrides))
    settings = load_serve_settings(PARAMS)
    assert settings.threshold == 1.0 and isinstance(settings.threshold, float)
    assert settings.formats == ("JPEG", "PNG")


def test_too_small_batches_are_refused() -> None:
    serve = yaml.safe_load(PARAMS.read_text())["serve"]
    with pytest.raises(AidetectorError, match=r"serve\.max_batch_size: expected greater than"):
        ServeSettings.from_mapping({**serve, "max_batch_size": 1})


@pytest.mark.parametrize("rate", ["fast", "60 per fortnight", ""])
def test_a_bad_feedback_rate_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: str
) -> None:
    overrides = tmp_path / "serve.yaml"
    overrides.write_text(yaml.safe_dump({"feedback_rate_limit": rate}))
    monkeypatch.setenv(OVERRIDES_ENV, str(overrides))
    with pytest.raises(AidetectorError, match=r"feedback_rate_limit.*expected a rate such as"):
        load_serve_settings(PARAMS)


def test_access_is_fail_closed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    settings = load_serve_settings(PARAMS)
    assert settings.allow_anonymous is False and settings.feedback_min_sources >= 2
    assert [str(rate) for rate in settings.feedback_rates] == ["60 per 1 minute"]
