"""The model bundle: `config.json` + `weights.safetensors`, rebuilt through the registry by name.

A bundle is everything needed to serve a model, with nothing pickled:
  config.json = {"format": 1, "name": registered name, "model": registry key, "task",
                 "model_config": {...}, "transform": {the task's transform state}, "example_input": {...},
                 "metrics": {...}}
  weights.safetensors = the state dict.
Training writes it; the MLflow pyfunc model and the FastAPI service both load it through the task's
predictor (`inference.predictor.load_predictor`), so serving applies exactly the transforms training
fitted. Each task documents its own transform layout in its predictor module (`inference/tasks/<task>/`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from inference.registry import get_spec

BUNDLE_FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


class BundleError(ValueError):
    """A bundle that is missing, malformed or does not match its model."""


def save_bundle(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `config.json` (meta + format) and `weights.safetensors` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key in ("name", "model", "task", "model_config", "transform"):
        if key not in meta:
            raise BundleError(f"bundle meta lacks {key!r}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps({"format": BUNDLE_FORMAT, **meta}, indent=2))
    return directory


def find_bundle_dir(path: str | Path) -> Path:
    """The folder holding `config.json`: the path itself, or inside an MLflow model directory."""
    path = Path(path)
    for candidate in (path, path / "artifacts" / "bundle", path / "bundle"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    hits = sorted(path.rglob(CONFIG_FILE)) if path.is_dir() else []
    if hits:
        return hits[0].parent
    raise BundleError(f"no {CONFIG_FILE} found under {path}")


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The bundle folder and its parsed `config.json` (format checked), without building the model."""
    directory = find_bundle_dir(path)
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{directory / CONFIG_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise BundleError(f"unsupported bundle format {found!r} (expected {BUNDLE_FORMAT})")
    for key in ("name", "model", "task", "model_config", "transform"):
        if key not in meta:
            raise BundleError(f"{directory / CONFIG_FILE} lacks {key!r}")
    return directory, meta


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from config + weights (strict: every tensor must match). The model is found by
    name in the registry and built from its config; nothing is unpickled."""
    directory, meta = read_meta(path)
    spec = get_spec(meta["model"])
    if spec.task != meta["task"]:
        raise BundleError(f"{meta['name']}: the bundle says task {meta['task']!r}, model {spec.name} is {spec.task!r}")
    model = spec.build(meta["model_config"])
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{weights} is missing")
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except Exception as e:  # safetensors header errors, shape mismatches
        raise BundleError(f"cannot load weights from {weights}: {e}") from e
    return model.to(device).eval(), meta
