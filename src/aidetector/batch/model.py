"""Which model scores: a registered version (by alias or number) or a model directory.

A registered version is exported (hash-checked) into a working directory, as `aidetector
export` does; a directory given with --model-dir is used as it is, under the version
`local-<first 12 hex digits of its weights' sha256>`, so that resume never mixes two
different local models.
"""

from __future__ import annotations

from pathlib import Path

from aidetector.batch.scorer import ModelRef
from aidetector.config.schema import RunConfig
from aidetector.models.artifact import file_sha256, read_model_config, verified_weights_path


def local_model(model_dir: Path) -> ModelRef:
    """A model directory that may never have been registered."""
    config = read_model_config(model_dir)
    sha = str(config.get("weights_sha256") or file_sha256(verified_weights_path(model_dir, config)))
    name = str(config.get("name", model_dir.name))
    precision = str(config.get("precision", "fp32"))
    return ModelRef(model_dir, name, f"local-{sha[:12]}", f"local_{name}_{precision}")


def registered_model(
    cfg: RunConfig, workdir: Path, alias: str | None = None, version: str | None = None
) -> ModelRef:
    """Export the version named by number (else alias) from the registry into workdir."""
    from aidetector.config.tracking import tracking_uri
    from aidetector.registry.export import export_from_uri

    exported = export_from_uri(
        tracking_uri(cfg.mlflow),
        cfg.registry.name,
        workdir,
        alias=None if version is not None else alias,
        version=version,
    )
    return ModelRef(workdir, exported.registered_model, exported.version, exported.readable_name)
