"""Packaging: the champion's registry facts land in the BentoML model; the Bento builds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aidetector.registry.bento import bento_model_version

from .conftest import (
    API_KEY,
    BENTOML,
    PROJECT_ROOT,
    BentoServer,
    ServingEnv,
    free_port,
    wait_until,
)
from .images import RAW, unique_jpeg


def bentoml_json(env: ServingEnv, *args: str, cwd: Path = PROJECT_ROOT) -> dict:
    result = subprocess.run(
        [str(BENTOML), *args, "-o", "json"],
        env=env.env(), check=True, capture_output=True, text=True, cwd=cwd,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_imported_model_carries_the_registry_facts(serving_env: ServingEnv) -> None:
    model = serving_env.models["1"]
    info = bentoml_json(serving_env, "models", "get", model.tag)
    assert info["labels"] == {
        "registered_model": "ai-image-detector",
        "registry_version": "1",
        "alias": "",
        "readable_name": "v1.0_cnn_resnet18_fp32",
        "precision": "fp32",
        "weights_sha256": info["labels"]["weights_sha256"],
    }
    assert info["metadata"]["metrics"] == {"accuracy": 0.625}
    assert info["metadata"]["network"]["arch"] == "resnet18"
    assert model.tag.split(":")[1] == bento_model_version("1", info["labels"]["weights_sha256"])


def test_importing_the_same_version_twice_reuses_it(serving_env: ServingEnv) -> None:
    model = serving_env.models["1"]
    report = serving_env.root / "again.json"
    subprocess.run(
        [sys.executable, "-m", "aidetector.registry.bento", "--model-dir", str(model.model_dir),
         "--version", "1", "--no-build", "--report", str(report)],
        env=serving_env.env(), check=True, capture_output=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert json.loads(report.read_text())["model_tag"] == model.tag


@pytest.mark.slow
def test_the_bento_builds_in_the_v2_format_and_serves(
    serving_env: ServingEnv, tmp_path: Path
) -> None:
    # A copy of what the build reads, so that the repository's build/ stays untouched.
    for name in ("pyproject.toml", "README.md", "bentofile.yaml", "requirements-serve.txt"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    shutil.copytree(PROJECT_ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(serving_env.params_path, tmp_path / "params.yaml")
    model = serving_env.models["2"]
    subprocess.run(
        [sys.executable, "-m", "aidetector.registry.bento", "--model-dir", str(model.model_dir),
         "--version", "2", "--readable-name", model.readable_name],
        env=serving_env.env(), check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "build" / "package.json").read_text())
    bento = bentoml_json(serving_env, "get", report["bento_tag"], cwd=tmp_path)
    assert [m["tag"] for m in bento["services"][0]["models"]] == [model.tag]
    bento_dir = serving_env.bentoml_home / "bentos" / "ai-image-detector"
    src = bento_dir / report["bento_tag"].split(":")[1] / "src"
    # A v2 Bento records its image; "python.wheels is not supported by bento v2, fallback to
    # bento v1" (what a project wheel in bentofile.yaml caused) leaves it out.
    manifest = yaml.safe_load((src.parent / "bento.yaml").read_text())
    assert manifest["spec"] == 2 and manifest["image"]["python_version"] == "3.11"
    assert (src / "params.yaml").is_file()
    assert (src / "aidetector" / "serving" / "static" / "index.html").is_file()
    assert not list(src.rglob("__pycache__")), "compiled files were packed into the Bento"
    # What `bentoml containerize` builds from (no Docker engine here to run it): Debian with
    # Python 3.11, BentoML's uid and port that the Kubernetes manifests assume, and the
    # pinned PyPI torch, whose Linux x86_64 wheel is the CUDA build.
    dockerfile = (src.parent / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "USER bentoml" in dockerfile and "EXPOSE 3000" in dockerfile
    requirements = (src.parent / "env" / "python" / "requirements.txt").read_text().split()
    assert {"torch==2.14.1", "torchvision==0.29.1", "nvidia-ml-py==13.615.71"} <= set(requirements)

    # The built Bento serves, from its own copy of the code: a marker added to the Bento's
    # copy of the page must come back from GET /.
    page = src / "aidetector" / "serving" / "static" / "index.html"
    page.write_text(page.read_text() + "<!-- served from the Bento -->\n")
    # The session's store holds other models too (a container's holds only the Bento's):
    # name the one this Bento was built with, or `latest` is whichever was imported last.
    served = serving_env.env(API_KEY=API_KEY, AIDETECTOR_MODEL_TAG=model.tag)
    env = {k: v for k, v in served.items() if k != "PYTHONPATH"}
    port = free_port()
    log_path = tmp_path / "bento-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BENTOML), "serve", report["bento_tag"], "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
    server = BentoServer(f"http://127.0.0.1:{port}", process, log_path, API_KEY)
    try:
        wait_until(server, "/readyz", 200)
        verdict = server.post("/predict", data=unique_jpeg(4242), headers=RAW)
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["model"]["version"] == "2"
        assert "<!-- served from the Bento -->" in server.get("/").text
    finally:
        server.stop()


def test_the_inference_path_imports_only_what_the_bento_installs() -> None:
    # requirements-serve.txt has no scikit-learn, MLflow, Lightning or DVC: the modules a
    # request goes through, model loading and the domain check included, must not need them.
    code = (
        "import sys\n"
        "import aidetector.serving.model_runtime, aidetector.serving.verdicts\n"
        "import aidetector.serving.routes, aidetector.serving.cache\n"
        "print(sorted(m for m in ('sklearn', 'mlflow', 'lightning', 'dvc') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
    served = (PROJECT_ROOT / "requirements-serve.txt").read_text()
    assert "scikit-learn" not in served
