"""Recipes as data plus hooks: `train()` runs any recipe's `before_fit` hook through one generic call
(its section is overridable and logged, its metrics land in the run), and `smoke` applies the recipe's
own `tiny` shrink. The hook here is a fake that only records what it was given."""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import pytest
from mlflow import MlflowClient

from data.series.corpus import CorpusConfig
from data.series.pretrain import PretrainDataConfig
from training.recipes import FitContext, Recipe, apply_overrides, get_recipe, smoke
from training.run import train
from training.tracking import PrefixedMLFlowLogger

SEEN: list[dict[str, Any]] = []


@dataclass(frozen=True, kw_only=True)
class ProbeHook:
    """A `training.recipes.FitHook` that records its context and returns one metric."""

    section: ClassVar[str] = "probe"
    value: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __call__(self, ctx: FitContext) -> dict[str, float]:
        trainer = ctx.make_trainer(ctx.recipe.trainer, False, [])
        SEEN.append({"ctx": ctx, "callbacks": list(trainer.callbacks), "logger": ctx.make_logger("probe_")})
        return {"probe_value": self.value}


class Marker(L.Callback):
    """An extra callback of the run (like the retraining scheduler's), and a way to see the fitted model."""

    model = None

    def on_test_end(self, trainer, pl_module):
        self.model = pl_module.model


def test_the_hook_section_is_overridable_and_logged():
    recipe = dataclasses.replace(get_recipe("itransformer-etth1"), before_fit=ProbeHook())
    assert "probe" in recipe.sections()
    over = apply_overrides(recipe, ["probe.value=2.5"])
    assert over.before_fit == ProbeHook(value=2.5) and over.to_dict()["probe"] == {"value": 2.5}
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(recipe, ["probe.nope=1"])
    with pytest.raises(ValueError, match="unknown section"):
        apply_overrides(get_recipe("itransformer-etth1"), ["probe.value=1"])  # no hook, no section


def test_train_calls_the_hook_generically_inside_the_run(tracking):
    SEEN.clear()
    marker = Marker()
    recipe = apply_overrides(
        dataclasses.replace(smoke(get_recipe("itransformer-etth1")), before_fit=ProbeHook()), ["probe.value=2.5"]
    )
    result = train(recipe, uri=tracking, register=False, callbacks=[marker])
    assert len(SEEN) == 1
    ctx = SEEN[0]["ctx"]
    assert ctx.recipe.model_config.n_variates == 7 and ctx.recipe.model_config.n_marks == 4  # resolved to the data
    assert ctx.datamodule.n_variates == 7  # set up before the hook runs
    assert ctx.model is marker.model  # the model the main fit then trains
    assert marker in SEEN[0]["callbacks"]  # the run's extra callbacks reach the hook's trainers
    logger = SEEN[0]["logger"]
    assert isinstance(logger, PrefixedMLFlowLogger) and logger.run_id == result.run_id
    assert result.metrics["probe_value"] == 2.5 and result.version == ""
    run = MlflowClient(tracking).get_run(result.run_id)
    assert run.data.metrics["probe_value"] == 2.5 and run.data.params["probe.value"] == "2.5"


def test_smoke_applies_the_recipes_own_tiny_shrink():
    recipe = dataclasses.replace(
        get_recipe("itransformer-etth1"), tiny=lambda r: dataclasses.replace(r, description="shrunk")
    )
    small = smoke(recipe)
    assert small.description == "shrunk" and small.trainer.max_epochs == 1 and small.trainer.limit_val_batches == 2
    assert smoke(get_recipe("itransformer-etth1")).model_config == type(recipe.model_config).tiny()


def test_recipe_checks_its_data_corpus_and_monitor():
    base = get_recipe("itransformer-etth1")
    assert base.trainer.monitor == "val_mse"  # the task objective's default, resolved
    with pytest.raises(ValueError, match="needs a pretraining corpus"):
        dataclasses.replace(base, data=PretrainDataConfig())
    with pytest.raises(ValueError, match="takes no corpus"):
        dataclasses.replace(base, corpus=CorpusConfig())
    with pytest.raises(ValueError, match="monitor"):
        apply_overrides(base, ["trainer.monitor=val_loss"])
    with pytest.raises(KeyError, match="unknown model"):
        Recipe(name="x", model="nope", model_config=base.model_config, data=base.data)
