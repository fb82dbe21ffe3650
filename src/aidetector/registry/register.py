"""Registers every trained model as two versions, FP32 and FP16, without duplicates."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetector.config.schema import RunConfig
from aidetector.config.tracking import artifact_location, tracking_uri
from aidetector.models.artifact import (
    attach_drift_reference,
    convert_model_dir,
    read_model_config,
)
from aidetector.models.drift import DRIFT_FILE
from aidetector.registry import PRECISIONS
from aidetector.registry.client import connect, mlflow_errors
from aidetector.registry.evidence import (
    Provenance,
    config_json,
    describe_version,
    git_commit,
    metric_tags,
    read_eval_metrics,
    version_metrics,
)
from aidetector.registry.naming import (
    MAJOR_TAG,
    MINOR_BY_PRECISION,
    SOURCE_SHA_TAG,
    major_number,
    readable_name,
)

log = logging.getLogger(__name__)

# A version's identity: the hash of its own weights file plus its precision.
IDENTITY_TAGS = ("weights_sha256", "precision")
# Facts fixed at creation; re-registering refreshes the other evidence but never these.
FIXED_TAGS = {
    *IDENTITY_TAGS,
    "readable_name",
    MAJOR_TAG,
    "version_minor",
    SOURCE_SHA_TAG,
    "git_commit",
}


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version as the register stage reports it."""

    model_name: str
    precision: str
    version: str
    readable_name: str
    weights_sha256: str
    source: str | None  # MLflow types a model version's source as optional
    metrics: dict[str, float]
    created: bool  # False when an identical version already existed


@dataclass(frozen=True)
class ArtifactRunTarget:
    """Where to log a version's files when its training run is gone from the tracking store."""

    experiment: str
    artifact_location: str | None


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model if it does not exist yet."""
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(
            name,
            description=(
                "REAL-vs-AI-generated image detectors. Every trained model has an FP32 and an "
                "FP16 version; the `champion` alias marks the one in production."
            ),
            tags={"project": "ai-image-detector"},
        )


def list_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Return every version of a registered model (aliases are not populated)."""
    escaped = name.replace("'", "\\'")
    return list(client.search_model_versions(f"name='{escaped}'"))


def find_version(versions: list[ModelVersion], sha256: str, precision: str) -> ModelVersion | None:
    """Return the version holding exactly these weights in this precision, if any."""
    for version in versions:
        if (
            version.tags.get("weights_sha256") == sha256
            and version.tags.get("precision") == precision
        ):
            return version
    return None


def artifact_run_id(
    client: MlflowClient, training_run_id: str | None, model_name: str, target: ArtifactRunTarget
) -> str:
    """Return the training run if the store still has it, otherwise a new run for the files."""
    if training_run_id:
        try:
            if client.get_run(training_run_id).info.lifecycle_stage == "active":
                return training_run_id
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        log.warning("training run %s is gone; logging %s to a new run", training_run_id, model_name)
    experiment = client.get_experiment_by_name(target.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(target.experiment, artifact_location=target.artifact_location)
    )
    run = client.create_run(experiment_id, run_name=f"register-{model_name}")
    client.set_tag(run.info.run_id, "aidetector.purpose", "registry")
    client.set_terminated(run.info.run_id)
    run_id: str = run.info.run_id
    return run_id


def _refresh_evidence(
    client: MlflowClient, version: ModelVersion, tags: dict[str, str], description: str
) -> None:
    for key, value in tags.items():
        if key not in FIXED_TAGS and version.tags.get(key) != value:
            client.set_model_version_tag(version.name, version.version, key, value)
    if version.description != description:
        client.update_model_version(version.name, version.version, description=description)


def register_trained_model(
    client: MlflowClient,
    registered_name: str,
    model_dir: Path,
    eval_metrics: dict[str, float],
    provenance: Provenance,
    target: ArtifactRunTarget,
    drift_reference: Path | None = None,
) -> list[RegisteredVersion]:
    """Register one trained model directory as an FP32 and an FP16 version (or reuse them).

    drift_reference (the evaluation's drift_reference.json) goes into both versions'
    directories, for serving to compare its traffic with.
    """
    config = read_model_config(model_dir)
    model_name, family = str(config["name"]), str(config.get("family") or "model")
    source_sha = str(config["weights_sha256"])
    training_run_id = config.get("mlflow_run_id") or _summary_run_id(model_dir)
    existing = list_versions(client, registered_name)
    major = major_number([version.tags for version in existing], source_sha)
    run_id: str | None = None  # resolved only when a version has to be created
    results: list[RegisteredVersion] = []
    with tempfile.TemporaryDirectory(prefix="aidetector-register-") as staging:
        for precision in PRECISIONS:
            metrics, borrowed = version_metrics(eval_metrics, precision)
            version_dir = convert_model_dir(
                model_dir, Path(staging) / precision, precision, metrics
            )
            if drift_reference is not None:
                attach_drift_reference(version_dir, drift_reference)
            sha = str(read_model_config(version_dir)["weights_sha256"])
            tags = {
                "readable_name": readable_name(major, precision, model_name, family),
                MAJOR_TAG: str(major),
                "version_minor": str(MINOR_BY_PRECISION[precision]),
                "model_name": model_name,
                "family": family,
                "arch": str(config["network"]["arch"]),
                "precision": precision,
                "weights_sha256": sha,
                SOURCE_SHA_TAG: source_sha,
                "data_hash": str(config.get("data_hash", "unknown")),
                "data_name": provenance.data_name,
                "git_commit": provenance.git_commit,
                "training_run_id": str(training_run_id or "none"),
                "resolved_config": config_json(provenance.resolved_config),
                "metrics_measured_on_fp32": ",".join(borrowed),
                **metric_tags(metrics),
            }
            description = describe_version(tags, metrics, borrowed)
            found = find_version(existing, sha, precision)
            if found is not None:
                _refresh_evidence(client, found, tags, description)
                version, source = found.version, found.source
            else:
                run_id = run_id or artifact_run_id(client, training_run_id, model_name, target)
                artifact_path = f"registry/{precision}"
                client.log_artifacts(run_id, str(version_dir), artifact_path=artifact_path)
                source = f"runs:/{run_id}/{artifact_path}"
                created = client.create_model_version(
                    registered_name, source, run_id=run_id, tags=tags, description=description
                )
                version = created.version
            results.append(
                RegisteredVersion(
                    model_name=model_name,
                    precision=precision,
                    version=str(version),
                    readable_name=tags["readable_name"],
                    weights_sha256=sha,
                    source=source,
                    metrics=metrics,
                    created=found is None,
                )
            )
    return results


def _summary_run_id(model_dir: Path) -> str | None:
    summary = model_dir / "train_summary.json"
    return json.loads(summary.read_text()).get("mlflow_run_id") if summary.is_file() else None


def register_models(cfg: RunConfig) -> list[RegisteredVersion]:
    """Register every configured model's FP32 and FP16 versions; write the registry report."""
    uri = tracking_uri(cfg.mlflow)
    client = connect(uri)
    name = cfg.registry.name
    target = ArtifactRunTarget(cfg.mlflow.experiment, artifact_location(cfg.mlflow))
    commit = git_commit()
    results: list[RegisteredVersion] = []
    with mlflow_errors(uri):
        ensure_registered_model(client, name)
        for model_name in cfg.model:
            eval_dir = cfg.paths.eval_reports / model_name
            eval_metrics = read_eval_metrics(eval_dir / "metrics.json")
            drift = eval_dir / DRIFT_FILE
            provenance = Provenance(commit, cfg.data.name, cfg.run_params(model_name))
            model_dir = cfg.paths.models / model_name
            results += register_trained_model(
                client,
                name,
                model_dir,
                eval_metrics,
                provenance,
                target,
                drift_reference=drift if drift.is_file() else None,
            )
    write_registry_report(results, name, cfg.registry.report)
    return results


def write_registry_report(versions: list[RegisteredVersion], name: str, path: Path) -> None:
    """Write reports/registry.json; `created` is left out so a no-op re-run writes the same file."""
    rows = [{k: v for k, v in asdict(version).items() if k != "created"} for version in versions]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"registered_model": name, "versions": rows}, indent=2) + "\n")
