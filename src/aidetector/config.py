"""Loads the run configuration: DVC's composed params.yaml, or conf/ composed with overrides."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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


def compose_config(overrides: list[str], config_dir: Path = CONFIG_DIR) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides, resolved, as DVC would."""
    if not (config_dir / "config.yaml").is_file():
        raise AidetectorError(
            f"no Hydra config at {config_dir}/config.yaml; run from the project root"
        )
    try:
        with initialize_config_dir(str(config_dir.resolve()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    except HydraException as error:
        raise AidetectorError(_explain_hydra_error(error, overrides, config_dir)) from error
    return resolve(cfg)


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


def load_params(path: Path = PARAMS_FILE) -> DictConfig:
    """Load DVC's composed params.yaml."""
    if not path.is_file():
        raise AidetectorError(f"{path} not found; run from the project root or `make params`")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return resolve(cfg)


def load_config(overrides: list[str], params_path: Path = PARAMS_FILE) -> DictConfig:
    """Return conf/ composed with overrides if any are given, otherwise params.yaml."""
    return compose_config(overrides) if overrides else load_params(params_path)
