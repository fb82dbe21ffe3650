"""Packaging: import the champion into the BentoML model store, then build the Bento.

`python pipelines/package.py` (and `make bento`) exports the version holding the `champion`
alias from the MLflow registry, imports its model directory with the registry facts as
labels and metadata, and runs `bentoml build`. The Bento embeds the model, so serving needs
no MLflow access. `--model-dir DIR` packages a local model directory instead (no registry).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aidetector.config.serve import MODEL_TAG_ENV, load_serve_settings
from aidetector.errors import AidetectorError
from aidetector.models.artifact import (
    METRICS_FILE,
    WEIGHTS_FILE,
    file_sha256,
    model_files,
    read_model_config,
)

BENTOFILE = Path("bentofile.yaml")
# What `bentoml build` reads: the package, params.yaml and the bentofile (see bentofile.yaml).
BUILD_CONTEXT = Path("build/bento")
CHAMPION = "champion"


@dataclass(frozen=True)
class RegistryInfo:
    """What the registry says about the packaged version (labels and metadata come from it)."""

    registered_model: str
    version: str
    alias: str | None
    readable_name: str
    precision: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def labels(self, weights_sha256: str) -> dict[str, str]:
        """BentoML labels: short strings that `bentoml models list` shows and filters on."""
        return {
            "registered_model": self.registered_model,
            "registry_version": self.version,
            "alias": self.alias or "",
            "readable_name": self.readable_name,
            "precision": self.precision,
            "weights_sha256": weights_sha256,
        }


def registry_info_from_export(exported: Any, model_dir: Path) -> RegistryInfo:
    """Build RegistryInfo from aidetector.registry.export's ExportedModel."""
    config = read_model_config(model_dir)
    return RegistryInfo(
        registered_model=exported.registered_model,
        version=str(exported.version),
        alias=exported.alias,
        readable_name=exported.readable_name,
        precision=str(exported.tags.get("precision", config.get("precision", "fp32"))),
        metrics=read_metrics(model_dir),
    )


def read_metrics(model_dir: Path) -> dict[str, Any]:
    """Return metrics.json of a model directory, or {} when it has none."""
    path = model_dir / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def bento_model_version(registry_version: str, weights_sha256: str) -> str:
    """BentoML version string: registry version plus weights hash, so imports are idempotent."""
    safe = "".join(c if c.isalnum() else "-" for c in registry_version.lower()).strip("-")
    return f"v{safe or 'local'}-{weights_sha256[:12]}"


def import_model_dir(model_dir: Path, info: RegistryInfo, name: str) -> str:
    """Copy a model directory into the BentoML model store; return its tag (name:version).

    Importing the same weights again returns the existing tag instead of a duplicate.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    config = read_model_config(model_dir)
    weights = model_dir / str(config.get("weights_file", WEIGHTS_FILE))
    sha = file_sha256(weights)
    if config.get("weights_sha256") not in (None, sha):
        raise AidetectorError(f"{weights} does not match the sha256 in its config.yaml")
    tag = f"{name}:{bento_model_version(info.version, sha)}"
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        existing = None
    if existing is not None:
        if existing.info.labels.get("weights_sha256") != sha:
            raise AidetectorError(f"BentoML model {tag} exists with other weights; delete it")
        return str(existing.tag)
    metadata = _without_none(
        {**asdict(info), "network": config.get("network"), "data_hash": config.get("data_hash")}
    )
    with bentoml.models.create(
        tag, labels=info.labels(sha), metadata=metadata, module="aidetector.serving"
    ) as model:
        for file_name in model_files(config):
            if (model_dir / file_name).is_file():
                shutil.copyfile(model_dir / file_name, Path(model.path) / file_name)
    return str(model.tag)


def _without_none(value: Any) -> Any:
    """Drop None values recursively: BentoML metadata refuses them."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value if v is not None]
    return value


def stage_build_context(out_dir: Path = BUILD_CONTEXT, project: Path = Path(".")) -> Path:
    """Copy what the Bento holds into out_dir; return out_dir.

    The `aidetector` package goes at the top of the context, beside params.yaml, so the
    Bento's src/ imports it as it is. Bento v2 has no `python.wheels`: a project wheel would
    make BentoML fall back to its legacy v1 format, and v2 installs requirements before it
    copies src/, so a wheel referenced from there could not be installed either.
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    shutil.copytree(
        project / "src" / "aidetector",
        out_dir / "aidetector",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in (BENTOFILE.name, "requirements-serve.txt", "params.yaml"):
        if not (project / name).is_file():
            raise AidetectorError(
                f"{project / name} is missing; build the Bento from the project root"
            )
        shutil.copy(project / name, out_dir / name)
    return out_dir


def build_bento(model_tag: str, project: Path = Path(".")) -> str:
    """Run `bentoml build` with the service pinned to model_tag; return the Bento's tag."""
    import bentoml

    context = stage_build_context(project / BUILD_CONTEXT, project)
    # The service reads its model tag at import; pin it so the Bento embeds exactly this one.
    os.environ[MODEL_TAG_ENV] = model_tag
    bento = bentoml.bentos.build_bentofile(str(context / BENTOFILE.name), build_ctx=str(context))
    return str(bento.tag)


def export_champion(out_dir: Path, alias: str) -> RegistryInfo:
    """Export the version holding alias from the MLflow registry into out_dir."""
    from aidetector.config.loading import load_params
    from aidetector.config.tracking import tracking_uri
    from aidetector.registry.export import export_from_uri

    cfg = load_params()
    shutil.rmtree(out_dir, ignore_errors=True)
    exported = export_from_uri(tracking_uri(cfg.mlflow), cfg.registry.name, out_dir, alias=alias)
    return registry_info_from_export(exported, out_dir)


def local_info(
    model_dir: Path, version: str, registered_model: str, readable_name: str | None = None
) -> RegistryInfo:
    """RegistryInfo for a model directory that never went through the registry."""
    config = read_model_config(model_dir)
    precision = str(config.get("precision", "fp32"))
    return RegistryInfo(
        registered_model=registered_model,
        version=version,
        alias=None,
        readable_name=readable_name or f"local_{config.get('name', model_dir.name)}_{precision}",
        precision=precision,
        metrics=read_metrics(model_dir),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Export the champion (or take --model-dir), import it, build the Bento."""
    parser = argparse.ArgumentParser(prog="package", description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default=CHAMPION, help="registry alias (default: champion)")
    parser.add_argument("--out", default="build/champion", help="export directory")
    parser.add_argument("--model-dir", help="package this model directory instead of the alias")
    parser.add_argument("--version", default="local", help="version label for --model-dir")
    parser.add_argument("--readable-name", help="readable name for --model-dir")
    parser.add_argument("--no-build", action="store_true", help="import the model only")
    parser.add_argument("--report", default="build/package.json", help="where to write a summary")
    args = parser.parse_args(argv)
    try:
        name = load_serve_settings().bento_model
        if args.model_dir:
            model_dir = Path(args.model_dir)
            info = local_info(model_dir, args.version, name, args.readable_name)
        else:
            model_dir = Path(args.out)
            info = export_champion(model_dir, args.alias)
        model_tag = import_model_dir(model_dir, info, name)
        print(f"imported {info.readable_name} (registry version {info.version}) as {model_tag}")
        bento_tag = None if args.no_build else build_bento(model_tag)
        if bento_tag:
            print(
                f"built Bento {bento_tag}; run it with `make serve`, or containerize it with "
                f"`bentoml containerize {bento_tag}`"
            )
    except AidetectorError as error:
        print(f"package: error: {error}", file=sys.stderr)
        return 2
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        json.dumps({"model_tag": model_tag, "bento_tag": bento_tag, **asdict(info)}, indent=2)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
