"""The Hydra config: every group option composes, and bad overrides give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from aidetector.config import compose_config, group_options
from aidetector.errors import AidetectorError

GROUPS = ["data", "model", "trainer", "optimizer", "experiment"]


def test_every_group_option_composes(in_project_root: Path) -> None:
    for group in GROUPS:
        for option in group_options(group):
            overrides = [f"{group}={option}"]
            if group == "data" and option == "folder":
                overrides.append("data.root=/tmp/images")
            cfg = compose_config(overrides)
            assert cfg.model, f"{group}={option} composed no model"
            assert cfg.data.image_size > 0


def test_default_trains_one_cnn_and_one_vit(in_project_root: Path) -> None:
    cfg = compose_config([])
    families = sorted(spec.family for spec in cfg.model.values())
    assert families == ["cnn", "vit"]


def test_model_override_selects_a_single_model(in_project_root: Path) -> None:
    cfg = compose_config(["model=vit_small", "trainer.max_epochs=5"])
    assert list(cfg.model) == ["vit_small"]
    assert cfg.model.vit_small.arch == "vit_small_patch16_224"
    assert cfg.trainer.max_epochs == 5


def test_committed_params_yaml_matches_composed_defaults(in_project_root: Path) -> None:
    composed = OmegaConf.to_container(compose_config([]))
    committed = OmegaConf.to_container(OmegaConf.load(in_project_root / "params.yaml"))
    assert committed == composed, "params.yaml is stale: run `make params`"


def test_no_hydra_runtime_interpolations_in_conf(in_project_root: Path) -> None:
    for path in (in_project_root / "conf").rglob("*.yaml"):
        assert "${hydra:" not in path.read_text(), f"{path} breaks DVC's composition"


def test_unknown_model_lists_the_choices(in_project_root: Path) -> None:
    with pytest.raises(
        AidetectorError, match=r"unknown model 'resnet999'; choose one of: .*vit_tiny"
    ):
        compose_config(["model=resnet999"])


def test_folder_data_requires_a_root(in_project_root: Path) -> None:
    with pytest.raises(AidetectorError, match=r"data\.root is required"):
        compose_config(["data=folder"])
