"""The Hugging Face Space: a Docker Space that runs the API image on CPU hardware, in FP32.

`aidetector space` writes three files and uploads them to a Space repository:

  README.md             the Space card: `sdk: docker`, `app_port`, `suggested_hardware:
                        cpu-basic`, the model repo it serves, and what it is
  Dockerfile            FROM the image deploy.yml built from the champion's Bento (`bentoml
                        containerize`): the same Bento as production, with the Space's serve
                        settings and the uid 1000 that Spaces run containers as
  serve-overrides.yaml  deploy/space/serve-overrides.yaml: CPU, FP32, the upload page open

The Space builds the Dockerfile itself, so the image must be pullable without credentials
(a public GHCR package). No secret is written: a Space's secrets are set in its settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from aidetector.config.serve import OVERRIDES_ENV, load_overrides
from aidetector.errors import AidetectorError, first_line

# What `bentoml containerize` images listen on; the Space's app_port must match.
APP_PORT = 3000
HARDWARE = "cpu-basic"
OVERRIDES_FILE = "serve-overrides.yaml"
OVERRIDES_IN_IMAGE = f"/etc/aidetector/{OVERRIDES_FILE}"
SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:DIGEST (or both).
IMAGE = re.compile(
    r"^(?P<name>[a-z0-9][\w.-]*(:\d+)?(/[a-z0-9][\w.-]*)+)"
    r"(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$"
)


def check_image(image: str) -> str:
    """Return image if it names one build (a tag other than latest, or a digest)."""
    match = IMAGE.match(image)
    if not match or (not match["tag"] and "@sha256:" not in image):
        raise AidetectorError(
            f"--image {image!r} does not name one build; use REGISTRY/NAME:TAG (the commit tag "
            f"deploy.yml pushes) or REGISTRY/NAME@sha256:DIGEST"
        )
    if match["tag"] == "latest":
        raise AidetectorError(f"--image {image!r}: `latest` moves; use the commit tag instead")
    return image


def space_dockerfile(image: str) -> str:
    """Return the Space's Dockerfile: the API image, made to run as uid 1000 on CPU."""
    return f"""# Hugging Face Docker Space, written by `aidetector space`: the production API image
# (the champion's Bento, `bentoml containerize`) on CPU hardware, in FP32.
FROM {check_image(image)}

USER root
# Spaces run containers as uid 1000; BentoML writes its multiprocess metrics under its home.
RUN mkdir -p "$BENTOML_HOME/prometheus_multiproc_dir" \\
    && chown -R 1000:1000 "$BENTOML_HOME"
COPY --chown=1000:1000 {OVERRIDES_FILE} {OVERRIDES_IN_IMAGE}
ENV {OVERRIDES_ENV}={OVERRIDES_IN_IMAGE} \\
    PORT={APP_PORT} \\
    BENTOML_DO_NOT_TRACK=True
USER 1000
EXPOSE {APP_PORT}
# The image's own entrypoint runs `bentoml serve` on 0.0.0.0:$PORT; the upload page is at /.
"""


def space_readme(image: str, model_repo: str | None, model_version: str | None) -> str:
    """Return README.md: the Space's front matter (its configuration) and a short card."""
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title="AI image detector",
        sdk="docker",
        app_port=APP_PORT,
        license="mit",
        models=[model_repo] if model_repo else None,
        tags=["ai-generated-image-detection", "bentoml"],
        suggested_hardware=HARDWARE,
        pinned=False,
        short_description="Real photograph or AI-generated? Upload an image.",
    )
    version = f" (registry version {model_version})" if model_version else ""
    model = f"[{model_repo}](https://huggingface.co/{model_repo})" if model_repo else "the champion"
    body = f"""
# AI image detector

Upload an image on this page: the model says whether it is a **REAL** photograph or **FAKE**
(AI-generated), with a calibrated probability, or **UNCERTAIN** when the image is unlike its
training data. The model is {model}{version}, the MLflow registry's `champion`.

This Space runs the production API image, `{image}`: the same BentoML service and
model that serve in the cluster, here on CPU hardware in FP32. The same HTTP API works here:
`curl -F file=@image.jpg https://<this-space>.hf.space/predict`.

The output is one signal, not proof: see the model card for what the model was trained on and
where it fails.
"""
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _space_overrides(path: Path) -> str:
    """Return the Space's serve overrides, checked: known keys, CPU and FP32."""
    overrides = load_overrides(path)
    for key, value in (("device", "cpu"), ("precision", "fp32"), ("gpus", 0)):
        if overrides.get(key) != value:
            raise AidetectorError(
                f"{path}: {key} is {overrides.get(key)!r}; the Space runs on {HARDWARE} "
                f"hardware, so set {key}: {value}"
            )
    return path.read_text()


def write_space(
    out_dir: Path,
    image: str,
    model_repo: str | None,
    model_version: str | None,
    serve_overrides: Path,
) -> list[Path]:
    """Write the Space folder (README.md, Dockerfile, serve-overrides.yaml); return its files."""
    if model_repo and not SPACE_ID.match(model_repo):
        raise AidetectorError(f"invalid Hub model repo id {model_repo!r}; use ORG/NAME")
    files = {
        "Dockerfile": space_dockerfile(image),
        "README.md": space_readme(image, model_repo, model_version),
        OVERRIDES_FILE: _space_overrides(serve_overrides),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    yaml.safe_load(files[OVERRIDES_FILE])  # written as read: still YAML
    return written


def push_space(folder: Path, space_id: str, token: str | None, message: str) -> str:
    """Create the Docker Space if needed (CPU hardware) and upload folder; return its URL."""
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if not SPACE_ID.match(space_id):
        raise AidetectorError(f"invalid Space id {space_id!r}; use ORG/NAME")
    if not token:
        raise AidetectorError("HF_TOKEN is not set; export a Hub write token or pass --dry-run")
    api = HfApi(token=token)
    try:
        api.create_repo(
            space_id,
            repo_type="space",
            space_sdk="docker",
            space_hardware=HARDWARE,  # type: ignore[arg-type]
            exist_ok=True,
        )
        api.upload_folder(
            repo_id=space_id, repo_type="space", folder_path=folder, commit_message=message
        )
    except (HfHubHTTPError, HFValidationError, httpx.HTTPError, OSError) as error:
        raise AidetectorError(
            f"could not publish the Space {space_id!r}: {first_line(error)}"
        ) from error
    return f"https://huggingface.co/spaces/{space_id}"
