"""The jobs file: its pydantic models, reading it, and the recipe a job trains.

Every validation error names the field and the job (`jobs[0] (nightly).metric: ...`), so the file can be
fixed from the message alone. A job is checked against its recipe at load time: the recipe exists, the
overrides apply, its task has a retraining holdout, and `metric` is one that holdout scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from training.retrain.cron import parse_cron

if TYPE_CHECKING:
    from training.recipes import Recipe


class JobsFileError(ValueError):
    """The jobs file is missing, not YAML, or not a valid jobs file; the message says what to fix."""


def _task_metrics(recipe_name: Any) -> tuple[str, ...] | None:
    """The metrics the recipe's task scores a holdout on; None when the recipe or its holdout is unknown
    (the job's recipe check then says so)."""
    from training.recipes import get_recipe
    from training.tasks import holdout_for

    try:
        return holdout_for(get_recipe(str(recipe_name)).task).metrics
    except (KeyError, ValueError):
        return None


def _one_of(choices: tuple[str, ...]) -> str:
    """`'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`: pydantic's wording for a Literal."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class RetrainJob(BaseModel):
    """One retraining job of the jobs file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    recipe: str
    data: str = Field(min_length=1, description="a path or glob of data files (the task says which formats)")
    cron: str
    holdout_windows: int = Field(64, ge=1, description="the most recent holdout windows used to compare")
    # "" = the first metric the task's holdout offers; validated against them once the recipe is known.
    metric: str = Field("", validate_default=True, description="the holdout score that decides (lower wins)")
    min_improvement: float = Field(0.0, ge=0.0, lt=1.0, description="relative, e.g. 0.02 = 2 % better")
    overrides: list[str] = Field(default_factory=list)
    model: str | None = Field(None, min_length=1, description="registered model name (default: the recipe's)")
    smoke: bool = False

    _recipe: Any = PrivateAttr(default=None)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        parse_cron(v)
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str, info: ValidationInfo) -> str:
        offered = _task_metrics(info.data.get("recipe"))  # `recipe` is declared, so validated, first
        if offered is None:
            return v
        if not v:
            return offered[0]
        if v not in offered:
            raise ValueError(f"Input should be {_one_of(offered)}")
        return v

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, v: list[str]) -> list[str]:
        for item in v:
            if item.split("=", 1)[0].strip() == "data.dataset":
                raise ValueError("data.dataset cannot be overridden: the job's `data:` is the dataset")
        return v

    @model_validator(mode="after")
    def _resolves(self) -> RetrainJob:
        from training.tasks import holdout_for

        self._recipe = build_recipe(self)  # unknown recipe or bad override: the message says which
        holdout_for(self._recipe.task)  # a task without a holdout cannot be retrained: says which tasks can
        return self

    @property
    def registered_name(self) -> str:
        return str(self._recipe.registered_name or self._recipe.name)


class JobsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    misfire_grace_time: int = Field(3600, ge=1, description="seconds a late run may still start")
    jobs: list[RetrainJob] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @model_validator(mode="after")
    def _unique(self) -> JobsFile:
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
        return self


def build_recipe(job: RetrainJob, dataset: str | Path | None = None) -> Recipe:
    """The job's recipe: `smoke` first (the tiny config), then the overrides, then name and data."""
    from training.recipes import apply_overrides, get_recipe, smoke

    try:
        recipe = get_recipe(job.recipe)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    if recipe.corpus is not None:
        raise ValueError(
            f"recipe {job.recipe!r} pretrains on the corpus mixture; retraining on fresh files takes a "
            "dataset recipe (`seer recipes` lists them)"
        )
    if job.smoke:
        recipe = smoke(recipe)
    recipe = apply_overrides(recipe, ["trainer.progress_bar=false", *job.overrides])
    if job.model:
        recipe = dataclasses.replace(recipe, registered_name=job.model)
    if dataset is not None:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, dataset=str(dataset)))
    return recipe


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    """A pydantic error location as `jobs[0] (name).field`, naming the job when the file gives its name."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int) and isinstance(raw, dict):
        jobs = raw.get("jobs")
        if isinstance(jobs, list) and loc[1] < len(jobs) and isinstance(jobs[loc[1]], dict):
            name = jobs[loc[1]].get("name")
            if name:
                out = out.replace(f"jobs[{loc[1]}]", f"jobs[{loc[1]}] ({name})", 1)
    return out or "(top level)"


def load_jobs(path: str | Path) -> JobsFile:
    """Read and validate a jobs file; relative `data:` paths are taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"jobs file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise JobsFileError(f"{path}: not valid YAML: {e}") from None
    if isinstance(raw, list):
        raw = {"jobs": raw}
    if not isinstance(raw, dict):
        raise JobsFileError(f"{path}: expected a mapping with `jobs:` (or a list of jobs), got {type(raw).__name__}")
    try:
        jobs_file = JobsFile.model_validate(raw)
    except ValidationError as e:
        lines = [f"  {_where(tuple(x['loc']), raw)}: {x['msg'].removeprefix('Value error, ')}" for x in e.errors()]
        raise JobsFileError(f"{path}: invalid jobs file:\n" + "\n".join(lines)) from None
    base = path.resolve().parent
    for job in jobs_file.jobs:
        if not Path(job.data).is_absolute():
            job.data = str(base / job.data)
    return jobs_file
