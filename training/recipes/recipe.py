"""What a recipe is: a typed, fully resolved training configuration, and the hooks a model family may add.

A `Recipe` names a registered model and its config, the data (`DataSpec`: it builds its own
DataModule, a `data.schemas.SeerDataModule`), the trainer settings, and optionally a pretraining
corpus and a `before_fit` hook (`FitHook`: a model-specific stage that runs inside the MLflow run
before the main fit, e.g. a warm-up) and a `tiny` function (what `smoke` shrinks besides the trainer).
The recipe functions live in one file per model family next to this one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from data.schemas import SeerDataModule
from data.series.corpus import CorpusConfig
from inference.registry import get_spec
from training.tasks import objective_for

if TYPE_CHECKING:
    import lightning as L
    from lightning.pytorch.loggers import Logger
    from torch import nn


class DataSpec(Protocol):
    """A recipe's `data` section: a frozen dataclass that builds its DataModule.

    `lookback`/`horizon` are the window every task so far trains on (the retraining holdout and
    `seer recipes` read them)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # a dataclass: `dataclasses.replace` changes its fields
    uses_corpus: ClassVar[bool]  # True: its windows come from the recipe's pretraining `corpus`

    @property
    def dataset(self) -> str: ...

    @property
    def lookback(self) -> int: ...

    @property
    def horizon(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def datamodule(self, corpus: CorpusConfig | None = None) -> SeerDataModule: ...

    def for_bundle(self, transform: Mapping[str, Any]) -> DataSpec:
        """The same data shaped like a saved bundle's transform (to test that bundle)."""
        ...


@runtime_checkable
class Described(Protocol):
    """A data section that can say what it reads, in a person's words (the file, its frequency, the
    split): `seer train` prints it before training."""

    def describe(self) -> str: ...


class FileRecipe(Protocol):
    """A family's recipe on a user's file: registered model `name`-d, `horizon` steps, the `targets`
    series (default every numeric one); the data section picks the rest (frequency, calendar, lookback)."""

    def __call__(self, path: str, *, horizon: int, name: str, targets: tuple[str, ...] = ()) -> Recipe: ...


@dataclass(frozen=True)
class FitContext:
    """What a `before_fit` hook gets: the resolved recipe, its set-up data, the model about to be fitted,
    and factories for Lightning pieces that log into the same MLflow run."""

    recipe: Recipe
    datamodule: SeerDataModule
    model: nn.Module
    # A Trainer like the main fit's for these settings, logger and callbacks (the run's extra callbacks,
    # e.g. the retraining scheduler's cancellation check, are added).
    make_trainer: Callable[[TrainerConfig, Logger | bool, list[L.Callback]], L.Trainer]
    make_logger: Callable[[str], Logger]  # a logger into the run that prefixes every metric name


class FitHook(Protocol):
    """A model-specific stage before the main fit. A frozen dataclass: its fields are a recipe section
    named `section` (overridable as `--set <section>.<field>=...`, logged with the recipe's params)."""

    section: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...

    def __call__(self, ctx: FitContext) -> dict[str, float]:
        """Run the stage (it may change `ctx.model` in place); returns summary metrics for the run."""
        ...


# Lightning strategies `training.run` supports: one process, or data-parallel processes (DDP; checked with 2 CPU
# processes in tests/training/test_distributed.py); the last is DDP for models whose steps leave some parameters
# without a gradient (the experts a mixture of experts routed nothing to), at the cost of a search every step.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    max_epochs: int = 10
    patience: int = 3  # early stopping on `monitor`
    lr: float = 1e-4
    lr_decay: float = 0.5  # lr × decay after every `lr_step` epochs (default: every epoch)
    lr_step: int = 1
    optimizer: str = "adam"  # or "adamw" (decoupled weight decay)
    weight_decay: float = 0.0
    seed: int = 2021
    accelerator: str = "auto"
    # Processes per node and nodes (`training.distributed`): devices × num_nodes > 1 trains data-parallel,
    # every process on its own shard, `data.batch_size` windows per process per step.
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto (ddp when devices × num_nodes > 1) | ddp | ddp_find_unused_parameters_true
    precision: str = "32-true"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    progress_bar: bool = True
    monitor: str = ""  # early stopping and best weights; "": the task objective's default (set by Recipe)
    gradient_clip_val: float | None = None  # clip the gradient norm (None: no clipping)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.lr_step < 1 or self.weight_decay < 0:
            raise ValueError("lr_step must be >= 1 and weight_decay >= 0")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.gradient_clip_val is not None and self.gradient_clip_val <= 0:
            raise ValueError("gradient_clip_val must be > 0 or None")
        if type(self.devices) is not int or type(self.num_nodes) is not int or min(self.devices, self.num_nodes) < 1:
            raise ValueError(
                f"devices and num_nodes must be integers >= 1, got {self.devices!r} and {self.num_nodes!r}"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")


def tiny_model(recipe: Recipe) -> Recipe:
    """The default `Recipe.tiny`: the model's `tiny()` config (the data fixes its sizes again)."""
    return dataclasses.replace(recipe, model_config=type(recipe.model_config).tiny())


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    model: str  # inference.registry.REGISTRY key
    model_config: Any
    data: DataSpec
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    registered_name: str = ""  # MLflow registry name, "<model>-<dataset>"
    experiment: str = "seer"
    description: str = ""
    corpus: CorpusConfig | None = None  # set: the data's windows come from this pretraining mixture
    before_fit: FitHook | None = None  # a model-specific stage before the main fit (see FitHook)
    tiny: Callable[[Recipe], Recipe] = field(default=tiny_model, compare=False, repr=False)  # used by `smoke`

    def __post_init__(self) -> None:
        if self.data.uses_corpus != (self.corpus is not None):
            need = "needs a pretraining corpus" if self.data.uses_corpus else "takes no corpus"
            raise ValueError(f"recipe {self.name}: its data ({type(self.data).__name__}) {need}")
        objective = objective_for(self.task)
        if not self.trainer.monitor:  # frozen: the resolved default is written once, here
            object.__setattr__(self, "trainer", dataclasses.replace(self.trainer, monitor=objective.default_monitor))
        if self.trainer.monitor not in objective.monitors:
            raise ValueError(f"trainer.monitor must be one of {objective.monitors}, got {self.trainer.monitor!r}")

    @property
    def task(self) -> str:
        return get_spec(self.model).task

    def sections(self) -> dict[str, str]:
        """Override section -> Recipe field: model, data, trainer, corpus, and the hook's section."""
        out = {"model": "model_config", "data": "data", "trainer": "trainer", "corpus": "corpus"}
        if self.before_fit is not None:
            out[self.before_fit.section] = "before_fit"
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "model": self.model,
            "registered_name": self.registered_name,
            "experiment": self.experiment,
            "model_config": self.model_config.to_dict(),
            "data": self.data.to_dict(),
            "trainer": dataclasses.asdict(self.trainer),
        }
        if self.corpus is not None:
            out["corpus"] = dataclasses.asdict(self.corpus)
        if self.before_fit is not None:
            out[self.before_fit.section] = self.before_fit.to_dict()
        return out
