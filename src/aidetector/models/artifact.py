"""The model directory: safetensors weights, config.yaml and metrics.json, and its loader.

The same directory is what training exports, MLflow stores, the registry versions
and the Bento embeds; nothing in it is pickled.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.models.domain import DOMAIN_FILE, DomainProfile
from aidetector.models.drift import DRIFT_FILE, DriftReference
from aidetector.models.factory import (
    INPUT_LAYER,
    build_network,
    default_explain_layer,
    network_kwargs,
)
from aidetector.models.files import file_sha256
from aidetector.preprocessing import Preprocessing

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class LoadedModel:
    """A network ready for inference, with the preprocessing it was trained with."""

    network: nn.Module
    preprocessing: Preprocessing
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    domain: DomainProfile | None = None
    # What evaluation saw (models/drift.py); None for directories registered before it.
    drift: DriftReference | None = None

    @property
    def precision(self) -> str:
        """The stored precision, fp32 or fp16."""
        return str(self.config["precision"])

    @property
    def class_order(self) -> ClassOrder:
        """The class names in label order, as training read them from the prepared data."""
        names = self.config.get("class_names")
        if not isinstance(names, list):
            raise AidetectorError("the model's config.yaml has no class_names list")
        return ClassOrder.from_names(names)

    @property
    def temperature(self) -> float:
        """The fitted softmax temperature (1.0 for a model saved before calibration)."""
        return float(self.config.get("temperature", 1.0))

    @property
    def explain_layer(self) -> str:
        """What explanations attribute to: config.yaml's, else the family default.

        Directories saved before explanations existed have none; the default keeps them
        explainable.
        """
        recorded = self.config.get("explain_layer")
        if recorded:
            return str(recorded)
        network_config = self.config.get("network")
        if not isinstance(network_config, dict):
            raise AidetectorError("the model's config.yaml has neither explain_layer nor network")
        return explain_layer_for(self.network, network_config)


def explain_layer_for(network: nn.Module, network_config: dict[str, Any]) -> str:
    """Return the default explained layer of a built network (see default_explain_layer)."""
    blocks = getattr(network, "blocks", None)
    depth = len(blocks) if isinstance(blocks, nn.Sequential) else None
    return default_explain_layer(network_config, depth)


def model_files(config: dict[str, Any]) -> list[str]:
    """Return the files of a model directory: weights, profiles, config.yaml, metrics.json."""
    files = [str(config.get("weights_file", WEIGHTS_FILE))]
    for section, default in (("domain", DOMAIN_FILE), ("drift", DRIFT_FILE)):
        described = config.get(section)
        if isinstance(described, dict):
            files.append(str(described.get("file", default)))
    return [*files, CONFIG_FILE, METRICS_FILE]


def save_model_dir(
    network: nn.Module,
    spec: dict[str, Any],
    preprocessing: Preprocessing,
    out_dir: Path,
    class_order: ClassOrder,
    precision: str = "fp32",
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    temperature: float = 1.0,
    domain: DomainProfile | None = None,
    explain_layer: str | None = None,
) -> Path:
    """Write weights (cast to precision), config.yaml and optional metrics.json; return out_dir.

    class_order is the prepared data's: config.yaml's class_names is what every reader of the
    directory takes the label order from.

    temperature (fitted on validation data) and the domain profile travel with the weights,
    so that every copy of the directory predicts and flags the same way. So does the layer
    that explanations attribute to (explain_layer; the family default when None).
    """
    if precision not in PRECISIONS:
        raise AidetectorError(f"unknown precision '{precision}'; use fp32 or fp16")
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = PRECISIONS[precision]
    state = {
        key: tensor.detach()
        .to("cpu", dtype=dtype if tensor.is_floating_point() else None)
        .contiguous()
        .clone()
        for key, tensor in network.state_dict().items()
    }
    weights_path = out_dir / WEIGHTS_FILE
    save_file(state, str(weights_path), metadata={"precision": precision})
    layer = explain_layer or explain_layer_for(network, network_kwargs(spec))
    try:
        if layer != INPUT_LAYER:
            network.get_submodule(layer)  # a typo fails here, not at the first explanation
    except AttributeError as error:
        raise AidetectorError(
            f"explain_layer {layer!r} is not a module of {spec['arch']} ({error}); "
            f"name one of its modules (e.g. layer4 or blocks.11.norm1) or {INPUT_LAYER!r}"
        ) from error
    config = {
        "format_version": FORMAT_VERSION,
        "name": spec.get("name", spec["arch"]),
        "family": spec.get("family"),
        "network": network_kwargs({**spec, "pretrained": False}),
        "preprocessing": preprocessing.to_dict(),
        "class_names": class_order.as_list(),
        "precision": precision,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": file_sha256(weights_path),
        "temperature": float(temperature),
        "explain_layer": layer,
        **({"domain": domain.save(out_dir)} if domain is not None else {}),
        **(extra or {}),
    }
    write_config_and_metrics(out_dir, config, metrics)
    return out_dir


def write_config_and_metrics(
    out_dir: Path, config: dict[str, Any], metrics: dict[str, Any] | None
) -> None:
    """Write config.yaml, and metrics.json when metrics are given."""
    (out_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    if metrics is not None:
        (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))


def verified_weights_path(model_dir: Path, config: dict[str, Any]) -> Path:
    """Return the weights file of a model directory after checking it against config.yaml."""
    weights_path: Path = model_dir / config.get("weights_file", WEIGHTS_FILE)
    if not weights_path.is_file():
        raise AidetectorError(f"{model_dir}: weights file {weights_path.name} is missing")
    expected = config.get("weights_sha256")
    if expected and file_sha256(weights_path) != expected:
        raise AidetectorError(f"{weights_path} is corrupt: its sha256 does not match config.yaml")
    return weights_path


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """Return the parsed config.yaml of a model directory."""
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise AidetectorError(f"{model_dir} is not a model directory: {CONFIG_FILE} is missing")
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as error:
        raise AidetectorError(f"{config_path} is not valid YAML: {error}") from error
    if not isinstance(config, dict) or "network" not in config:
        raise AidetectorError(f"{config_path} has no 'network' section")
    return config


def load_model_dir(
    model_dir: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> LoadedModel:
    """Rebuild the network from config.yaml plus safetensors weights, verifying the hash.

    dtype defaults to the stored precision; pass torch.float32 to upcast fp16 weights.
    """
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    weights_path = verified_weights_path(model_dir, config)
    network = build_network(**{**config["network"], "pretrained": False})
    state = load_file(str(weights_path))
    network.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    )
    target = dtype or PRECISIONS[config.get("precision", "fp32")]
    network = network.to(device=device, dtype=target).eval()
    if config["network"].get("family") == "cnn":
        # NHWC convolutions are faster for inference: oneDNN on CPUs (resnet18 at 224 px,
        # batch 32: 20 -> 27 img/s here), tensor cores in FP16 on GPUs.
        network = network.to(memory_format=torch.channels_last)
    metrics_path = model_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    section = config.get("domain")
    domain = DomainProfile.load(model_dir, section).to(device) if section else None
    drift_section = config.get("drift")
    drift = DriftReference.load(model_dir, drift_section) if drift_section else None
    try:
        preprocessing = Preprocessing.from_dict(config["preprocessing"])
    except (KeyError, TypeError, ValueError) as error:
        raise AidetectorError(
            f"{model_dir / CONFIG_FILE}: bad preprocessing section ({error}); re-export the model"
        ) from None
    return LoadedModel(
        network=network,
        preprocessing=preprocessing,
        config=config,
        metrics=metrics,
        domain=domain,
        drift=drift,
    )


def convert_model_dir(
    source_dir: Path, out_dir: Path, precision: str, metrics: dict[str, Any] | None = None
) -> Path:
    """Write a copy of a model directory in `precision`, with its own metrics.json; return out_dir.

    The same precision copies the weights byte for byte (so the hash stays the training
    run's); another precision casts the stored tensors, as save_model_dir would, without
    rebuilding the network.
    """
    if precision not in PRECISIONS:
        raise AidetectorError(f"unknown precision '{precision}'; use fp32 or fp16")
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    config = read_model_config(source_dir)
    weights = verified_weights_path(source_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / WEIGHTS_FILE
    for key, default in (("domain", DOMAIN_FILE), ("drift", DRIFT_FILE)):
        section = config.get(key)
        if section:  # the same in both precisions (the domain profile stays float32)
            name = str(section.get("file", default))
            shutil.copyfile(source_dir / name, out_dir / name)
    if config.get("precision", "fp32") == precision:
        shutil.copyfile(weights, target)
    else:
        dtype = PRECISIONS[precision]
        state = {
            key: (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
            for key, tensor in load_file(str(weights)).items()
        }
        save_file(state, str(target), metadata={"precision": precision})
    converted = {
        **config,
        "precision": precision,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": file_sha256(target),
    }
    write_config_and_metrics(out_dir, converted, metrics)
    return out_dir


def attach_drift_reference(model_dir: Path, reference: Path) -> dict[str, Any]:
    """Copy an evaluation's drift_reference.json into a model directory and describe it in
    config.yaml's `drift` section (file, sha256, features); return that section.

    The weights, and so the directory's identity, stay as they are.
    """
    model_dir = Path(model_dir)
    parsed = DriftReference.read(reference)  # a broken file fails here, not in serving
    target = model_dir / DRIFT_FILE
    shutil.copyfile(reference, target)
    section = {
        "file": DRIFT_FILE,
        "sha256": file_sha256(target),
        "samples": parsed.samples,
        "features": list(parsed.features),
    }
    config = read_model_config(model_dir)
    config["drift"] = section
    (model_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    return section
