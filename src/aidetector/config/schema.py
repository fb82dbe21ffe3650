"""The typed run configuration: one strict model per config group of conf/ (and params.yaml).

`aidetector.config.loading` builds a RunConfig from params.yaml or from conf/ composed with
overrides; stages receive it, or the one group they need, and never cast a value again.

Sections that `hydra.utils.instantiate` turns into objects keep their `_target_` (and
`_partial_`). Where the target is this project's own code (datamodule, module, model) every
key is declared and an unknown one is refused. Where it is a library's (trainer, optimizer,
scheduler) the keys the project writes or reads are declared and typed, and other keys flow
through to the target, whose own signature checks them: Lightning's Trainer takes dozens of
options, and another optimizer or scheduler takes other ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from aidetector.config.release import ReleaseSettings
from aidetector.config.serve import ServeSettings
from aidetector.config.strict_model import StrictModel
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder

if TYPE_CHECKING:
    from aidetector.preprocessing import Preprocessing

# YAML and Hydra give strings and lists; strict mode would refuse them for Path and tuple.
# Only the container is lax: each item is still checked strictly.
ConfigPath = Annotated[Path, Field(strict=False)]
RGB = Annotated[tuple[float, float, float], Field(strict=False)]
Names = Annotated[tuple[str, ...], Field(strict=False)]


class TargetSpec(StrictModel):
    """A section that hydra.utils.instantiate builds: `_target_` and its arguments."""

    target: str = Field(alias="_target_")

    def instantiate_args(self) -> dict[str, Any]:
        """Return the section as instantiate takes it: `_target_` and every key that was set."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class OpenTargetSpec(TargetSpec):
    """A library's target: the declared keys are checked, other keys go to the target."""

    model_config = ConfigDict(extra="allow")


class PathsConfig(StrictModel):
    """Where the stages read and write (`paths`)."""

    prepared: ConfigPath
    models: ConfigPath
    checkpoints: ConfigPath
    train_reports: ConfigPath
    eval_reports: ConfigPath
    suite: ConfigPath


class DemoConfig(StrictModel):
    """The synthetic stand-in dataset (`demo`)."""

    root: ConfigPath
    n_per_class: int
    image_size: int
    seed: int


class DataModuleConfig(TargetSpec):
    """aidetector.training.datamodule.DetectorDataModule's arguments (`datamodule`)."""

    prepared_dir: ConfigPath
    batch_size: int
    num_workers: int
    hflip: bool
    rot90: bool
    rotation_degrees: float
    # Crop mode (data.preprocessing_mode): a random crop_size crop per sample and epoch.
    preprocessing_mode: Literal["resize", "crop"] = "resize"
    crop_size: int = Field(default=0, ge=0)


class ModuleConfig(TargetSpec):
    """aidetector.training.module.DetectorModule's configurable arguments (`module`)."""

    class_weighted_loss: bool
    label_smoothing: float
    channels_last: bool = False


class SchedulerConfig(OpenTargetSpec):
    """A learning-rate scheduler factory (`scheduler`; OneCycleLR by default)."""

    partial: bool = Field(alias="_partial_")
    max_lr: float | None = None
    pct_start: float | None = None


class CallbacksConfig(StrictModel):
    """Checkpointing and early stopping (`callbacks`)."""

    monitor: str
    mode: Literal["min", "max"]
    early_stopping_patience: int
    resume: bool


class CalibrationConfig(StrictModel):
    """How the temperature and the domain profile are fitted after training (`calibration`)."""

    domain_percentile: float
    size_tolerance: float
    max_train_images: int
    seed: int


class SuiteSetConfig(StrictModel):
    """An extra folder of the evaluation suite (`evaluate.suite.sets.NAME`)."""

    root: ConfigPath


class VariantConfig(StrictModel):
    """A robustness variant of the test split (`evaluate.suite.variants[i]`)."""

    name: str
    kind: Literal["jpeg", "rescale", "center_crop"]
    quality: int = 75
    factor: float = 0.5
    fraction: float = 0.875


class SuiteConfig(StrictModel):
    """The evaluation suite every model is scored on (`evaluate.suite`)."""

    sets: dict[str, SuiteSetConfig] = Field(default_factory=dict)
    variants: list[VariantConfig] = Field(default_factory=list)


class EvaluateConfig(StrictModel):
    """Evaluation and scoring settings (`evaluate`)."""

    batch_size: int
    latency_samples: int
    latency_warmup: int
    suite: SuiteConfig


class MlflowConfig(StrictModel):
    """The MLflow tracking store (`mlflow`; MLFLOW_TRACKING_URI overrides the URI)."""

    tracking_uri: str
    artifact_root: ConfigPath
    experiment: str


class SplitConfig(StrictModel):
    """Split fractions (`data.split`)."""

    train: float
    val: float
    test: float


class DataConfig(StrictModel):
    """The image folder and its preprocessing (`data`, conf/data/)."""

    name: str
    root: ConfigPath
    image_size: int
    # Class names in label order: the index of each name is its label.
    classes: Names

    @field_validator("classes")
    @classmethod
    def _real_and_fake_once_each(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return ClassOrder.from_names(classes).names
        except AidetectorError as error:
            raise ValueError(str(error)) from None

    split: SplitConfig
    seed: int
    equalize: bool
    mean: RGB
    std: RGB
    # Files above this many bytes are skipped unread by ingest.
    max_file_bytes: int = Field(gt=0)
    # Folders or fsspec URLs in the REAL/FAKE layout (the feedback store) whose new images
    # are added to the training split only (data/extra.py).
    extra_roots: Names = ()
    # resize: the whole image resized to image_size. crop: the native-resolution centre
    # store_size square is stored, training takes random image_size crops of it and inference
    # averages inference_crops fixed crops (docs/modelling.md: "Full-resolution inputs: crop mode").
    preprocessing_mode: Literal["resize", "crop"]
    store_size: int = Field(gt=0)
    inference_crops: int = Field(ge=1)

    @model_validator(mode="after")
    def _crops_fit_the_stored_square(self) -> DataConfig:
        if self.preprocessing_mode == "crop":
            from aidetector.preprocessing import crop_offsets

            try:
                crop_offsets(self.store_size, self.image_size, self.inference_crops)
            except ValueError as error:
                raise ValueError(
                    f"{error} (data.store_size={self.store_size}, "
                    f"data.image_size={self.image_size}, "
                    f"data.inference_crops={self.inference_crops})"
                ) from None
        return self

    @property
    def array_size(self) -> int:
        """Side of the squares prepare stores: store_size in crop mode, else image_size."""
        return self.store_size if self.preprocessing_mode == "crop" else self.image_size

    def preprocessing(self) -> Preprocessing:
        """Return the preprocessing this data config describes."""
        from aidetector.preprocessing import Preprocessing  # torch; only needed by stages

        if self.preprocessing_mode == "resize":
            return Preprocessing(
                image_size=self.image_size, mean=self.mean, std=self.std, equalize=self.equalize
            )
        return Preprocessing(
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            equalize=self.equalize,
            mode="crop",
            store_size=self.store_size,
            inference_crops=self.inference_crops,
        )


class DistillConfig(StrictModel):
    """Knowledge distillation from another configured model (`model.<name>.distill`)."""

    # A model of the `model` group, trained first; its model directory is the teacher.
    teacher: str
    # Share of the loss that matches the teacher's softened outputs (the rest: the labels).
    weight: float = Field(ge=0.0, le=1.0)
    # Softmax temperature for both sides of the distillation term (Hinton et al. 2015).
    temperature: float = Field(gt=0.0)


class NetworkSpec(TargetSpec):
    """One entry of `model`: build_network's arguments, plus how the network is trained."""

    name: str
    family: Literal["cnn", "vit"]
    arch: str
    pretrained: bool
    img_size: int
    num_classes: int
    drop_rate: float
    patch_size: int | None = None
    stem_pool: bool = True
    # A ViT's patch embedding: a convolutional stem, or timm's patchify layer. None: the stem
    # when trained from scratch, patchify when starting from pretrained (patchify) weights.
    conv_stem: bool | None = None
    distill: DistillConfig | None = None
    # What train@<name> reads besides the code: the teacher's model directory, or the prepared
    # data again for a model without one (dvc.yaml's deps cannot be conditional).
    learns_from: ConfigPath

    def instantiate_args(self) -> dict[str, Any]:
        """Return build_network's arguments (the training-only keys left out)."""
        args = super().instantiate_args()
        for key in ("distill", "learns_from", "conv_stem"):
            args.pop(key, None)
        if self.family == "vit":  # resolved here, so the model directory records the choice
            args["conv_stem"] = not self.pretrained if self.conv_stem is None else self.conv_stem
        elif self.conv_stem is not None:
            args["conv_stem"] = self.conv_stem  # build_network refuses it with a clear error
        return args


class TrainerConfig(OpenTargetSpec):
    """Lightning Trainer arguments (`trainer`, conf/trainer/); the rest go to the Trainer."""

    accelerator: str
    devices: int | str
    num_nodes: int
    precision: int | str
    max_epochs: int
    sync_batchnorm: bool = False


class OptimizerConfig(OpenTargetSpec):
    """An optimizer factory (`optimizer`, conf/optimizer/)."""

    partial: bool = Field(alias="_partial_")
    lr: float
    weight_decay: float = 0.0


class PromoteConfig(StrictModel):
    """How the champion is chosen (`registry.promote`)."""

    auto: bool
    # Higher is better, and the promotion compares it image by image (evaluation/intervals.py).
    metric: Literal["accuracy", "f1_fake", "f1_real", "roc_auc"]
    min_improvement: float
    min_accuracy: float
    max_ece: float
    max_regression: float
    max_fp16_accuracy_drop: float
    max_latency_ms_p95: float
    score_cache: ConfigPath
    force: bool
    report: ConfigPath


class RegistryConfig(StrictModel):
    """The MLflow Model Registry entry (`registry`, conf/registry/)."""

    name: str
    report: ConfigPath
    promote: PromoteConfig


class RunConfig(StrictModel):
    """The whole composed configuration: what params.yaml holds."""

    seed: int
    paths: PathsConfig
    demo: DemoConfig
    datamodule: DataModuleConfig
    module: ModuleConfig
    scheduler: SchedulerConfig
    callbacks: CallbacksConfig
    calibration: CalibrationConfig
    evaluate: EvaluateConfig
    mlflow: MlflowConfig
    data: DataConfig
    model: dict[str, NetworkSpec]
    trainer: TrainerConfig
    optimizer: OptimizerConfig
    registry: RegistryConfig
    serve: ServeSettings
    release: ReleaseSettings

    def model_spec(self, model_name: str) -> NetworkSpec:
        """Return one configured model, or a clear error listing the configured ones."""
        if model_name not in self.model:
            known = ", ".join(self.model)
            raise AidetectorError(
                f"model '{model_name}' is not configured; configured models: {known}"
            )
        return self.model[model_name]

    def run_params(self, model_name: str) -> dict[str, Any]:
        """Return the config of one model's run as plain data (other models left out)."""
        params = self.model_dump(by_alias=True, exclude_unset=True, mode="json")
        params["model"] = params["model"][model_name]
        return params
