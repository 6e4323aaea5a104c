"""The one registry of every model family: name -> `core.registry.ModelSpec`.

The only module that imports the families. Everything else (bundle loading, training, the
conformance suite, the CLI) looks models up here, filtered by task where it needs to.
"""

from __future__ import annotations

from core.registry import TASKS, ModelSpec
from forecasters import SPECS as FORECASTERS
from signals import SPECS as SIGNALS


def _assemble(*families: tuple[ModelSpec, ...]) -> dict[str, ModelSpec]:
    registry: dict[str, ModelSpec] = {}
    for spec in (s for family in families for s in family):
        if spec.name in registry:
            raise ValueError(f"model name {spec.name!r} is registered twice")
        registry[spec.name] = spec
    return dict(sorted(registry.items()))


REGISTRY: dict[str, ModelSpec] = _assemble(FORECASTERS, SIGNALS)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}") from None


def specs(task: str | None = None) -> list[ModelSpec]:
    """Every registered spec, or those of one task."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return [s for s in REGISTRY.values() if task is None or s.task == task]
