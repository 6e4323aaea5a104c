"""Pretrained models shipped with the repository, in `pretrained/<name>/`: list them, check them, register them.

Each folder is a model bundle (`config.json` + `weights.safetensors`, the layout of `inference.bundle`)
plus `PROVENANCE.json`: the recipe, seed, commit and command that trained it, the SHA-256 of the
weights file, and the zero-shot scores measured on that very file (the rows of
bench/results/accuracy.json that carry the same `weights_sha256`). `register` refuses a weights file
whose checksum is not the recorded one, logs the bundle as an MLflow run in the experiment
`seer-pretrained` and registers it like a trained model (`@champion` if the name has none), so
`seer serve --models NAME@champion` serves it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The repository's folder; an installed package (the Docker image) points at a copy with SEER_PRETRAINED_DIR.
PRETRAINED_DIR = Path(os.environ.get("SEER_PRETRAINED_DIR") or Path(__file__).resolve().parents[1] / "pretrained")
PROVENANCE = "PROVENANCE.json"
WEIGHTS = "weights.safetensors"
EXPERIMENT = "seer-pretrained"
SHA_TAG = "seer.weights_sha256"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Shipped:
    """One shipped model: its folder, bundle meta and provenance."""

    name: str
    path: Path
    meta: dict[str, Any]
    provenance: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    def verify(self) -> str:
        """The weights' SHA-256, after checking it is the one the provenance (and the results) record."""
        found, recorded = sha256(self.weights), self.provenance.get("sha256")
        if found != recorded:
            raise ValueError(
                f"{self.weights} has SHA-256 {found[:12]}…, its provenance records {str(recorded)[:12]}…: "
                "the file is not the one whose scores are published; restore it from the repository"
            )
        return found

    def summary(self) -> str:
        p = self.provenance
        scores = ", ".join(
            f"{d} MASE {s['mase']:.3f} CRPS {s['crps']:.3f}" for d, s in sorted(p.get("zero_shot", {}).items())
        )
        return (
            f"{self.name:18s} {self.meta['model']} ({p.get('parameters', 0) / 1e6:.1f} M parameters, "
            f"{p.get('dtype', '?')}), recipe {p.get('recipe')} seed {p.get('train_seed')} at commit "
            f"{p.get('commit')}; zero-shot vs seasonal naive: {scores or 'not scored yet'}"
        )


def shipped() -> dict[str, Shipped]:
    """Every folder under `pretrained/` that holds a bundle and its provenance."""
    out: dict[str, Shipped] = {}
    for prov in sorted(PRETRAINED_DIR.glob(f"*/{PROVENANCE}")):
        folder = prov.parent
        meta = json.loads((folder / "config.json").read_text())
        out[folder.name] = Shipped(folder.name, folder, meta, json.loads(prov.read_text()))
    return out


def get_shipped(name: str) -> Shipped:
    models = shipped()
    if name not in models:
        have = ", ".join(models) or f"none (no {PRETRAINED_DIR}/<name>/{PROVENANCE})"
        raise KeyError(f"no pretrained model {name!r}; shipped: {have}")
    return models[name]


def find_registered(name: str, digest: str, uri: str) -> str | None:
    """The version of registered model `name` made from weights with this SHA-256, if one exists."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for mv in client.search_model_versions(f"name = '{name}'"):
        if (mv.tags or {}).get(SHA_TAG) == digest:
            return str(mv.version)
    return None


def register(name: str, *, uri: str, registered_name: str | None = None) -> tuple[str, bool, bool]:
    """Register shipped model `name` (as `registered_name`, default `name`) in the registry at `uri`:
    (version, now @champion, newly registered). Weights already registered under that name (same
    SHA-256) are not registered again: their version is returned."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from training.tracking import CHAMPION, log_and_register

    model = get_shipped(name)
    digest = model.verify()
    target = registered_name or name
    mlflow.set_tracking_uri(uri)
    existing = find_registered(target, digest, uri)
    if existing is not None:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        aliases = client.get_registered_model(target).aliases or {}
        return existing, str(aliases.get(CHAMPION)) == existing, False
    mlflow.set_experiment(EXPERIMENT)
    p = model.provenance
    with mlflow.start_run(run_name=f"pretrained-{name}"):
        mlflow.log_params({k: p[k] for k in ("recipe", "train_seed", "commit", "dtype", "sha256") if k in p})
        scores = {f"zero_shot_{d}_{k}": v for d, s in p.get("zero_shot", {}).items() for k, v in s.items()}
        mlflow.log_metrics({k: float(v) for k, v in scores.items() if isinstance(v, (int, float))})
        mlflow.set_tags({SHA_TAG: digest, "seer.recipe": str(p.get("recipe")), "seer.pretrained": name})
        example = np.asarray(model.meta.get("example_input", {}).get("history", [[0.0]]), dtype=np.float64)
        version, champion = log_and_register(model.path, target, example)
        MlflowClient(tracking_uri=uri, registry_uri=uri).set_model_version_tag(target, version, SHA_TAG, digest)
    return version, champion, True
