"""Recipes: functions returning a typed, fully resolved training configuration (`Recipe`).

`seer train RECIPE --set trainer.max_epochs=3 --set data.horizon=192` picks a recipe and applies
dotted overrides; MLflow logs the resolved result. Defaults follow the official code of each paper.

One module per model family next to this one (e.g. `training/recipes/itransformer.py`) exports
`RECIPES: dict[name, () -> Recipe]` and, for models that train on a user's file, `FILE_RECIPES:
dict[model name, FileRecipe]`; the tables below gather every such module, so a family adds its
recipes by adding its file. Two kinds of recipe: a dataset recipe (`data` one dataset under its
protocol split and scaler) and a corpus-pretraining recipe (`corpus` set, `data` windows of the
pretraining mixture with held-out val/test windows). Override sections: model., data., trainer., and
corpus. or the recipe's `before_fit` hook section (e.g. warmup.) where the recipe has them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import re
from collections.abc import Callable
from typing import Any

from training.recipes.recipe import DataSpec, Described, FileRecipe, FitContext, FitHook, Recipe, TrainerConfig

BASE_MODULES = ("recipe",)  # this package's modules that define no family's recipes
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a registered model name (also a URL path segment)


def _gather(table_name: str) -> dict[str, Any]:
    """Every family module's table `table_name` (`RECIPES`, `FILE_RECIPES`), merged (a name defined twice
    is an error; a family without the table adds nothing to it)."""
    table: dict[str, Any] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in BASE_MODULES:
            continue
        family = importlib.import_module(f"{__name__}.{info.name}")
        for name, make in getattr(family, table_name, {}).items():
            if name in table:
                raise ValueError(f"{table_name} entry {name!r} is defined twice (again in {family.__name__})")
            table[name] = make
    return dict(sorted(table.items()))


RECIPES: dict[str, Callable[[], Recipe]] = _gather("RECIPES")
# Registered model name -> recipe on a user's file (`seer train MODEL --data FILE --horizon H --name NAME`).
FILE_RECIPES: dict[str, FileRecipe] = _gather("FILE_RECIPES")


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        hint = f"; {name} is a model: add --data FILE --horizon H --name NAME" if name in FILE_RECIPES else ""
        raise KeyError(f"unknown recipe {name!r}{hint}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]()


def file_recipe(model: str, path: str, horizon: int, name: str, targets: tuple[str, ...] = ()) -> Recipe:
    """The recipe that trains registered model `model` on the file at `path` to forecast `horizon`
    steps, registered as `name` (`targets`: the series to use; default every numeric one)."""
    if model not in FILE_RECIPES:
        raise KeyError(f"--data trains a model: {model!r} is not one of {', '.join(FILE_RECIPES)}")
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    if not NAME.fullmatch(name):
        raise ValueError(f"--name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return FILE_RECIPES[model](path, horizon=horizon, name=name, targets=targets)


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """Apply `section.field=value` overrides (sections: `Recipe.sections()`: model, data, trainer, corpus
    and the `before_fit` hook's; or a top-level field)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        value = _parse_value(raw)
        section, _, name = key.partition(".")
        sections = recipe.sections()
        if not name:
            if section not in {f.name for f in dataclasses.fields(recipe)}:
                raise ValueError(f"unknown recipe field {section!r}")
            recipe = dataclasses.replace(recipe, **{section: value})
            continue
        if section not in sections:
            known = ", ".join(f"{s}." for s in sections)
            raise ValueError(f"unknown section {section!r} in {item!r}; use {known}")
        attr = sections[section]
        sub = getattr(recipe, attr)
        if sub is None:
            raise ValueError(f"recipe {recipe.name} has no {section} section")
        fields = {f.name for f in dataclasses.fields(sub)}
        if name not in fields:
            raise ValueError(f"{section} has no field {name!r}; fields: {', '.join(sorted(fields))}")
        if isinstance(getattr(sub, name), tuple) and isinstance(value, list):
            value = tuple(value)
        recipe = dataclasses.replace(recipe, **{attr: dataclasses.replace(sub, **{name: value})})
    return recipe


def smoke(recipe: Recipe) -> Recipe:
    """The recipe's tiny config for a few steps, same path end to end (demos and checks): one epoch of
    2 batches per split, then the recipe's own `tiny` shrink (by default the model's `tiny()` config;
    a family may shrink its data, corpus and hook too)."""
    trainer = dataclasses.replace(
        recipe.trainer, max_epochs=1, limit_train_batches=2, limit_val_batches=2, limit_test_batches=2
    )
    return recipe.tiny(dataclasses.replace(recipe, trainer=trainer))


__all__ = [
    "FILE_RECIPES",
    "RECIPES",
    "DataSpec",
    "Described",
    "FileRecipe",
    "FitContext",
    "FitHook",
    "Recipe",
    "TrainerConfig",
    "apply_overrides",
    "file_recipe",
    "get_recipe",
    "smoke",
]
