"""The config mixin every model config uses (frozen, keyword-only, JSON round-trip) and shared validators."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigMixin:
    """`to_dict` / `from_dict` for frozen config dataclasses; unknown keys are an error."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON has them (tuples as lists), so a config survives config.json unchanged."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {unknown}")
        return cls(**d)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def check_positive(config: Any, *names: str) -> None:
    """ValueError naming the first of `names` whose value is below 1."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 1, got {value}")


def check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    """ValueError unless `config.name` is one of `choices`."""
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {'|'.join(choices)}, got {value!r}")


def check_fraction(config: Any, name: str) -> None:
    """ValueError unless `0 <= config.name < 1` (dropout rates)."""
    value = getattr(config, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
