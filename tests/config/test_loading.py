"""The Hydra config: every group option composes, and bad overrides give clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import compose_and_dump
from omegaconf import OmegaConf

from aidetector.config.loading import compose_config, compose_params, group_options, load_params
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
    assert cfg.model["vit_small"].arch == "vit_small_patch16_224"
    assert cfg.trainer.max_epochs == 5


def test_committed_params_yaml_matches_composed_defaults(in_project_root: Path) -> None:
    composed = OmegaConf.to_container(compose_params([]))
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


@pytest.fixture
def conf_copy(tmp_path: Path, in_project_root: Path) -> Path:
    """A copy of conf/ that a test may break."""
    shutil.copytree(in_project_root / "conf", tmp_path / "conf")
    return tmp_path / "conf"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer holds {old!r}"
    path.write_text(text.replace(old, new))


def test_a_wrong_type_in_a_group_file_names_the_file_and_the_key(conf_copy: Path) -> None:
    replace_in(conf_copy / "trainer/cpu.yaml", "max_epochs: 8", "max_epochs: ten")
    with pytest.raises(AidetectorError) as error:
        compose_config([], conf_copy)
    assert str(error.value) == (
        f"{conf_copy}/trainer/cpu.yaml: trainer.max_epochs: expected a valid integer, got 'ten'"
    )


def test_an_unknown_key_names_the_file_and_suggests_the_known_one(conf_copy: Path) -> None:
    replace_in(conf_copy / "data/demo.yaml", "name: demo", "name: demo\nimgae_size: 32")
    with pytest.raises(AidetectorError) as error:
        compose_config([], conf_copy)
    assert str(error.value) == (
        f"{conf_copy}/data/demo.yaml: data.imgae_size: unknown key (did you mean image_size?)"
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "overrides", "message"),
    [
        # A key of a group's shared base file, which the chosen option pulls in.
        ("data/_base.yaml", "equalize: false", "equalize: 'no'", [], "data.equalize"),
        ("model/_vit.yaml", "patch_size: 8", "patch_size: eight", [], "model.vit_tiny.patch_size"),
        # An experiment sets keys of other groups, and wins over them.
        (
            "experiment/cifake_resnet18.yaml",
            "max_epochs: 16",
            "max_epochs: '16'",
            ["experiment=cifake_resnet18"],
            "trainer.max_epochs",
        ),
        # Keys outside any group live in config.yaml.
        ("config.yaml", "  resume: false", "  resume: maybe", [], "callbacks.resume"),
    ],
)
def test_the_error_names_the_file_that_set_the_key(
    conf_copy: Path, file: str, old: str, new: str, overrides: list[str], message: str
) -> None:
    replace_in(conf_copy / file, old, new)
    with pytest.raises(AidetectorError, match=rf"^{conf_copy}/{file}: {message}: expected"):
        compose_config(overrides, conf_copy)


def test_a_bad_override_is_named_as_the_override(in_project_root: Path) -> None:
    with pytest.raises(AidetectorError) as error:
        compose_config(["trainer.max_epochs=ten"])
    assert str(error.value).startswith("override 'trainer.max_epochs=ten': trainer.max_epochs:")


def test_a_bad_params_yaml_is_named(tmp_path: Path, in_project_root: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        (in_project_root / "params.yaml").read_text().replace("  lr: 0.001", "  lr: fast")
    )
    with pytest.raises(AidetectorError) as error:
        load_params(params)
    assert str(error.value) == f"{params}: optimizer.lr: expected a valid number, got 'fast'"


def test_overrides_as_dvc_exp_run_passes_them_keep_working(in_project_root: Path) -> None:
    # `dvc exp run -S` hands Hydra these strings; YAML and Hydra give an int for `lr=1`.
    cfg = compose_config(["trainer.max_epochs=5", "optimizer.lr=1", "datamodule.batch_size=8"])
    assert cfg.trainer.max_epochs == 5 and cfg.datamodule.batch_size == 8
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.scheduler.max_lr == 1.0  # the interpolation follows the override


def test_a_quoted_number_is_not_taken_for_one(in_project_root: Path) -> None:
    with pytest.raises(AidetectorError, match=r"optimizer\.lr: expected a valid number"):
        compose_config(["optimizer.lr='0.1'"])


def test_library_targets_take_extra_keys_and_project_targets_refuse_them(
    in_project_root: Path,
) -> None:
    cfg = compose_config(["+trainer.limit_train_batches=2"])
    assert cfg.trainer.instantiate_args()["limit_train_batches"] == 2
    with pytest.raises(AidetectorError, match=r"datamodule\.batch_sise: unknown key"):
        compose_config(["+datamodule.batch_sise=2"])


def test_run_params_hold_one_model_as_composed(in_project_root: Path) -> None:
    params = compose_config([]).run_params("vit_tiny")
    committed = OmegaConf.to_container(OmegaConf.load(in_project_root / "params.yaml"))
    assert isinstance(committed, dict)
    assert params["model"] == committed["model"]["vit_tiny"]
    assert params["trainer"] == committed["trainer"]


def test_what_dvc_exp_run_writes_loads_as_typed_params(
    tmp_path: Path, in_project_root: Path
) -> None:
    # The function `dvc exp run -S KEY=VALUE` composes conf/ with before it runs the stages.
    params = tmp_path / "params.yaml"
    conf = str(in_project_root / "conf")
    overrides = ["model=vit_small", "trainer.max_epochs=5", "optimizer.lr=0.001"]
    compose_and_dump(params, conf, None, "config", str(in_project_root), overrides)
    cfg = load_params(params)
    assert list(cfg.model) == ["vit_small"] and cfg.trainer.max_epochs == 5
    assert cfg.optimizer.lr == cfg.scheduler.max_lr == 0.001

    compose_and_dump(params, conf, None, "config", str(in_project_root), ["trainer.max_epochs=x"])
    with pytest.raises(AidetectorError, match=rf"^{params}: trainer\.max_epochs: expected"):
        load_params(params)


def test_a_vit_from_scratch_gets_the_conv_stem_and_a_pretrained_one_patchify(
    in_project_root: Path,
) -> None:
    def stem(*overrides: str) -> object:
        cfg = compose_config(["model=vit_tiny", *overrides])
        return cfg.model_spec("vit_tiny").instantiate_args()["conv_stem"]

    assert stem() is True
    assert stem("model.vit_tiny.pretrained=true") is False
    assert stem("model.vit_tiny.conv_stem=false") is False
    assert (
        "conv_stem"
        not in compose_config(["model=resnet18"]).model_spec("resnet18").instantiate_args()
    )
