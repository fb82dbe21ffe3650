"""Publishes an exported model directory to the Hugging Face Hub, with a generated model card."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from aidetector.errors import AidetectorError, first_line
from aidetector.labels import ClassOrder
from aidetector.models.artifact import METRICS_FILE, read_model_config
from aidetector.registry.export import ExportedModel
from aidetector.registry.suite_table import SUITE_HEADING

CARD_FILE = "README.md"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
DATA_DISCLOSURE = {
    "demo": (
        "Trained and tested on the project's **synthetic demo data**, generated locally: REAL "
        "images are rendered scenes with sensor noise, FAKE images are the same kind of scene "
        "passed through a decoder-like upsampling path. It is a stand-in for CI and demos; "
        "these metrics say nothing about real image generators."
    ),
    "cifake": (
        "Trained and tested on **CIFAKE** (Bird & Lotfi, 2024, *CIFAKE: Image Classification "
        "and Explainable Identification of AI-Generated Synthetic Images*, IEEE Access; MIT "
        "licence). Its REAL images are CIFAR-10 (Krizhevsky & Hinton, 2009) and its FAKE images "
        "were generated with Stable Diffusion v1.4, all at 32x32 px."
    ),
}
OTHER_DATA = (
    "Trained and tested on a user-provided image folder (`data=folder`); the MLflow training "
    "run records its path. Check that folder's licence before publishing."
)


@dataclass(frozen=True)
class HubUpload:
    """What push-hub uploads (or would upload, in a dry run)."""

    repo_id: str
    files: tuple[tuple[str, int], ...]  # (path in repo, bytes)
    card: str
    uploaded: bool
    url: str | None = None


def _number(metrics: dict[str, Any], key: str, digits: int = 4) -> str:
    value = metrics.get(key)
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def suite_section(description: str) -> str:
    """Return the evaluation-suite table that promotion wrote into the version description."""
    if SUITE_HEADING not in description:
        return (
            "This version has not been scored on an evaluation suite yet: run the promote "
            "stage (`dvc repro`), which scores the champion and every candidate side by side."
        )
    table = description.split(SUITE_HEADING, 1)[1]
    return f"Suite{table.rstrip()}"


def build_model_card(exported: ExportedModel) -> ModelCard:
    """Return the model card: metrics, data, intended use, limitations, licence, provenance."""
    config = read_model_config(exported.out_dir)
    metrics_path = exported.out_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    tags = exported.tags
    data_name = tags.get("data_name", "unknown")
    precision = str(config.get("precision", "fp32"))
    arch = str(config["network"]["arch"])
    size = int(config["preprocessing"]["image_size"])
    title = exported.readable_name or f"{exported.registered_model} version {exported.version}"
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=f"aidetector-{data_name}",
            dataset_name=data_name,
            dataset_split="test",
            metric_type=key,
            metric_value=float(metrics[key]),
        )
        for key in ("accuracy", "f1_fake", "roc_auc")
        if key in metrics
    ]
    card_data = ModelCardData(
        license="mit",
        model_name=title,
        pipeline_tag="image-classification",
        tags=["ai-generated-image-detection", "safetensors", "timm", str(config.get("family"))],
        metrics=["accuracy", "f1", "roc_auc"],
        eval_results=eval_results or None,
    )
    labels = ", ".join(
        f"{index} = {name}"
        for index, name in enumerate(ClassOrder.from_names(config["class_names"]).names)
    )
    borrowed = tags.get("metrics_measured_on_fp32", "")
    temperature = float(config.get("temperature", 1.0))
    body = f"""
# {title}

Classifies an image as **REAL** (a photograph) or **FAKE** (AI-generated). A `{arch}`
({config.get("family")}) network at {size}x{size} px, stored in {precision.upper()} as
safetensors. Version {exported.version} of the MLflow registered model
`{exported.registered_model}`. Output label order (`config.yaml` `class_names`): {labels}.

## Metrics (test split)

| metric | value |
|---|---|
| accuracy | {_number(metrics, "accuracy")} |
| F1, FAKE class | {_number(metrics, "f1_fake")} |
| F1, REAL class | {_number(metrics, "f1_real")} |
| ROC-AUC | {_number(metrics, "roc_auc")} |
| batch-1 latency p95 (ms) | {_number(metrics, "latency_ms_p95", 2)} |
| FP16 - FP32 accuracy | {_number(metrics, "fp16_accuracy_delta")} |

Latency was measured on the machine that ran the evaluation, preprocessing included.
{f"Measured on the FP32 weights: {borrowed}." if borrowed else ""}
Probabilities are calibrated by temperature scaling (T = {temperature:.3f},
fitted on the validation split); calibrated ECE {_number(metrics, "ece")}, before calibration
{_number(metrics, "ece_uncalibrated")}.

## Evaluation suite

{suite_section(exported.description)}

## Data

{DATA_DISCLOSURE.get(data_name, OTHER_DATA)}

Data version (hash of the prepared data): `{tags.get("data_hash", config.get("data_hash"))}`.

## Intended use

One signal, among others, for flagging images that are likely AI-generated, for review by a
person: content moderation queues, provenance checks, research on generator traces.

## Limitations

- The output is a probability, not proof. Do not base decisions about people on it alone.
- It learns traces of the generators in its training data; images from other generators,
  edited, recompressed, screenshotted or resized images can fool it either way.
- Inputs are resized to {size}x{size} px, which removes detail that larger models could use.
- Inputs unlike the training data (by penultimate-feature distance, or by native size against
  the sizes seen in training) get the verdict **UNCERTAIN** rather than a confident guess;
  `config.yaml`'s `domain` section holds the thresholds.
- Accuracy on the data above does not transfer to other distributions; validate on your own.

## How to use

Preprocessing (resize, normalisation, class names) is in `config.yaml`. With the project:

```python
from aidetector.models.artifact import load_model_dir
model = load_model_dir("path/to/this/repo")  # checks the weights' sha256
```

## Licence

MIT, for the weights and the code. Training data keeps its own licence (see Data).

## Provenance

- git commit: `{tags.get("git_commit", "unknown")}`
- weights sha256: `{exported.weights_sha256}`
- MLflow training run: `{tags.get("training_run_id", "unknown")}`
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def _upload_error(repo_id: str, error: Exception) -> AidetectorError:
    return AidetectorError(
        f"could not upload to Hugging Face Hub repo '{repo_id}': {first_line(error)}"
    )


def push_model_dir(
    folder: Path, repo_id: str, token: str | None, dry_run: bool, commit_message: str
) -> HubUpload:
    """Upload folder (model files + README.md card) to repo_id; a dry run only lists it."""
    if not REPO_ID.match(repo_id):
        raise AidetectorError(f"invalid Hub repo id '{repo_id}'; use ORG/NAME")
    files = tuple(
        (str(path.relative_to(folder)), path.stat().st_size)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    )
    card = (folder / CARD_FILE).read_text() if (folder / CARD_FILE).is_file() else ""
    if dry_run:
        return HubUpload(repo_id, files, card, uploaded=False)
    if not token:
        raise AidetectorError("HF_TOKEN is not set; export a Hub write token or pass --dry-run")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message
        )
    except (HfHubHTTPError, HFValidationError, httpx.HTTPError, OSError) as error:
        raise _upload_error(repo_id, error) from error
    return HubUpload(repo_id, files, card, uploaded=True, url=str(commit.commit_url))
