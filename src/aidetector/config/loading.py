"""Loads the run configuration: DVC's composed params.yaml, or conf/ composed with overrides.

Either way the result is validated into a typed RunConfig here, at the boundary: an unknown
key or a wrong type is one error line that names the key and the file it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from pydantic import ValidationError

from aidetector.config.schema import RunConfig
from aidetector.config.sources import Composition, find_references
from aidetector.config.strict_model import Loc, describe_validation_error
from aidetector.errors import AidetectorError

CONFIG_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")


def group_options(group: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    """Return the selectable options of a config group (hidden `_base` files left out)."""
    return sorted(p.stem for p in (config_dir / group).glob("*.yaml") if not p.stem.startswith("_"))


def _explain_hydra_error(error: HydraException, overrides: list[str], config_dir: Path) -> str:
    for override in overrides:
        group, _, option = override.lstrip("+~").partition("=")
        if (config_dir / group).is_dir() and option not in group_options(group, config_dir):
            known = ", ".join(group_options(group, config_dir))
            return f"unknown {group} '{option}'; choose one of: {known}"
    return f"invalid configuration override: {str(error).splitlines()[0]}"


def _compose(overrides: list[str], config_dir: Path) -> tuple[DictConfig, Composition]:
    """Return conf/ composed with overrides and resolved, and what it was composed of."""
    if not (config_dir / "config.yaml").is_file():
        raise AidetectorError(
            f"no Hydra config at {config_dir}/config.yaml; run from the project root"
        )
    try:
        with initialize_config_dir(str(config_dir.resolve()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except HydraException as error:
        raise AidetectorError(_explain_hydra_error(error, overrides, config_dir)) from error
    # The hydra node says which file each group came from; params.yaml does not hold it.
    choices = {
        group: str(option)
        for group, option in cfg.hydra.runtime.choices.items()
        if option is not None and not str(group).startswith("hydra/")
    }
    with open_dict(cfg):
        del cfg["hydra"]
    references = find_references(OmegaConf.to_container(cfg, resolve=False))
    return resolve(cfg), Composition(config_dir, choices, overrides, references)


def resolve(cfg: DictConfig) -> DictConfig:
    """Resolve interpolations; a missing mandatory (`???`) value becomes a clear error."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise AidetectorError(f"{missing[0]} is required: pass {missing[0]}=VALUE")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise AidetectorError(f"invalid configuration: {str(error).splitlines()[0]}") from error
    return cfg


def _validate(
    cfg: DictConfig, source: Callable[[Loc], str], derived: Callable[[Loc], bool]
) -> RunConfig:
    """Return cfg as a RunConfig; the first problem is an error naming its key and source."""
    try:
        return RunConfig.model_validate(OmegaConf.to_container(cfg))
    except ValidationError as error:
        loc, line = describe_validation_error(error, RunConfig, derived=derived)
        raise AidetectorError(f"{source(loc)}: {line}") from error


def compose_params(overrides: list[str], config_dir: Path = CONFIG_DIR) -> DictConfig:
    """Return conf/ composed with overrides as DVC writes it to params.yaml, validated."""
    cfg, composition = _compose(overrides, config_dir)
    _validate(cfg, composition.source, composition.copies_another_key)
    return cfg


def compose_config(overrides: list[str], config_dir: Path = CONFIG_DIR) -> RunConfig:
    """Return the typed config of conf/ composed with Hydra overrides, as DVC would."""
    cfg, composition = _compose(overrides, config_dir)
    return _validate(cfg, composition.source, composition.copies_another_key)


def load_params(path: Path = PARAMS_FILE) -> RunConfig:
    """Return the typed config of DVC's composed params.yaml."""
    if not path.is_file():
        raise AidetectorError(f"{path} not found; run from the project root or `make params`")
    try:
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0]
        raise AidetectorError(f"{path}: not readable as YAML: {first_line}") from error
    if not isinstance(cfg, DictConfig):
        raise AidetectorError(f"{path}: expected a mapping of config groups")
    # DVC writes params.yaml resolved: every value is the one written there.
    return _validate(resolve(cfg), lambda _: str(path), lambda _: False)


def load_config(overrides: list[str], params_path: Path = PARAMS_FILE) -> RunConfig:
    """Return conf/ composed with overrides if any are given, otherwise params.yaml."""
    return compose_config(overrides) if overrides else load_params(params_path)
