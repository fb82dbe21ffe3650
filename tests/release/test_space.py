"""`aidetector space --dry-run` writes a Docker Space that serves the production API image on
CPU hardware in FP32: its front matter, Dockerfile and serve settings, and no secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from huggingface_hub import SpaceCard

from aidetector.cli import main
from aidetector.config.loading import load_params
from aidetector.config.serve import OVERRIDES_ENV, ServeSettings, load_overrides
from aidetector.errors import AidetectorError
from aidetector.release.space import APP_PORT, HARDWARE, check_image
from conftest import PROJECT_ROOT

IMAGE = "ghcr.io/acme/ai-image-detector:3f2a9c1d0b7e"
MODEL_REPO = "acme/ai-image-detector"
SECRETS = {
    "HF_TOKEN": "hf_" + "x" * 34,
    "API_KEY": "k" * 40,
    "GITHUB_TOKEN": "ghp_" + "y" * 36,
    "AIDETECTOR_WEBHOOK_SECRET": "w" * 40,
    "MLFLOW_TRACKING_PASSWORD": "p" * 24,
}


@pytest.fixture
def space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """The Space folder, written with secrets in the environment (none may leak into it)."""
    monkeypatch.chdir(PROJECT_ROOT)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "space"
    code = main(
        [
            "space",
            "--space-id",
            "acme/detector",
            "--image",
            IMAGE,
            "--model-repo",
            MODEL_REPO,
            "--model-version",
            "7",
            "--out",
            str(out),
            "--dry-run",
        ]
    )
    output = capsys.readouterr()
    assert code == 0, output.err
    assert "dry run: not uploaded to acme/detector" in output.out
    return out


def test_the_space_is_three_files(space: Path) -> None:
    assert sorted(p.name for p in space.iterdir()) == [
        "Dockerfile",
        "README.md",
        "serve-overrides.yaml",
    ]


def test_front_matter_makes_a_docker_space_on_cpu_hardware(space: Path) -> None:
    card = SpaceCard.load(space / "README.md")
    data = card.data.to_dict()
    assert data["sdk"] == "docker"
    assert data["app_port"] == APP_PORT == 3000
    assert data["suggested_hardware"] == HARDWARE == "cpu-basic"
    assert data["models"] == [MODEL_REPO]
    assert data["license"] == "mit"
    assert IMAGE in card.text and "registry version 7" in card.text


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0], line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_runs_the_api_image_as_uid_1000_with_the_space_settings(space: Path) -> None:
    instructions = dockerfile_instructions(space / "Dockerfile")
    assert instructions[0] == ("FROM", IMAGE)
    keys = [key for key, _ in instructions]
    assert keys[-2:] == ["USER", "EXPOSE"]
    assert instructions[-2] == ("USER", "1000")  # Spaces run containers as uid 1000
    assert instructions[-1] == ("EXPOSE", str(APP_PORT))
    [copy] = [value for key, value in instructions if key == "COPY"]
    source, target = copy.split()[-2:]
    assert (space / source).is_file()
    [env] = [value for key, value in instructions if key == "ENV"]
    settings = dict(re.findall(r"(\w+)=(\S+)", env))
    assert settings[OVERRIDES_ENV] == target
    # bentoml containerize's entrypoint serves on $PORT: the port the front matter names.
    assert settings["PORT"] == str(APP_PORT)
    # No CMD or ENTRYPOINT: the image's own (`bentoml serve`) runs, with the page at /.
    assert not {"CMD", "ENTRYPOINT"} & set(keys)


def test_serve_settings_are_cpu_fp32_and_valid_over_the_packaged_ones(space: Path) -> None:
    overrides = load_overrides(space / "serve-overrides.yaml")
    packaged = load_params(PROJECT_ROOT / "params.yaml").serve.model_dump()
    settings = ServeSettings.model_validate({**packaged, **overrides})
    assert (settings.device, settings.precision, settings.gpus) == ("cpu", "fp32", 0)
    assert settings.allow_anonymous  # the public upload page; API_KEY as a Space secret closes it


def test_no_secret_is_written_into_the_space(space: Path) -> None:
    text = "\n".join(path.read_text() for path in space.iterdir())
    for name, value in SECRETS.items():
        assert value not in text, name
    assert not re.search(r"\b(hf|ghp|gho|ghs)_[A-Za-z0-9]{20,}", text)
    assert not re.search(r"(?im)^\s*(ENV|ARG)\s.*(TOKEN|PASSWORD|SECRET|API_KEY)", text)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/ai-image-detector",
        "ghcr.io/acme/ai-image-detector:latest",
        "ai-image-detector:3f2a9c1d0b7e",
        "ghcr.io/acme/ai-image-detector:3f2a; rm -rf /",
    ],
)
def test_an_image_that_is_not_one_build_is_refused(image: str) -> None:
    with pytest.raises(AidetectorError, match="--image"):
        check_image(image)


def test_a_digest_pins_an_image() -> None:
    image = f"ghcr.io/acme/ai-image-detector@sha256:{'0' * 64}"
    assert check_image(image) == image


def test_space_settings_for_a_gpu_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(yaml.safe_dump({"device": "auto", "precision": "auto", "gpus": 1}))
    code = main(
        [
            *("space", "--space-id", "acme/detector", "--image", IMAGE, "--dry-run"),
            *("--serve-overrides", str(gpu), "--out", str(tmp_path / "out")),
        ]
    )
    assert code == 2
    assert "device is 'auto'" in capsys.readouterr().err


def test_publishing_needs_a_hub_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "out"
    code = main(["space", "--space-id", "acme/detector", "--image", IMAGE, "--out", str(out)])
    assert code == 2 and "HF_TOKEN is not set" in capsys.readouterr().err
    assert not out.exists()
