"""Field trajectories cut into rollout samples, and the LightningDataModule of the rollout recipes.

Data: one or more dataset files of `data.fields.generate` (`read_fields`: `u [N, T, *grid, V]`), or, when the
recipe names none, the dataset its `generation` parameters describe, generated once (seeded, with a
progress bar) into a cache folder (`SEER_FIELDS_CACHE`, default `./data_cache/fields`) under a hash of the
parameters and read from there afterwards.

Splits are by trajectory, never by snapshot: of the N trajectories (files in name order, then their own
order) the last `n_test` test, the `n_val` before them validate, the rest train, so no test or validation
state was ever seen in training, not even as a neighbour in time. The per-component mean and std are fitted
on the training trajectories only (every snapshot and grid point) and carried by every batch; the model sees
(u − mean)/std (the official IFactFormer-m training standardises the same way).

Samples: one model step is `stride` snapshots (its simulated time `dt` = stride × save_every × solver dt).
Training samples start at every snapshot with `unroll` (K) steps after it: u = u_t, target = u_{t+1..t+K}
(the pushforward/unroll length of the loss). Validation and test samples start every `eval_hop` snapshots
with `eval_steps` steps after them (the metrics' horizon). Loaders yield `data.schemas.RolloutBatch`es in
physical units.

Shapes: N trajectories, T snapshots, X/Y(/Z) grid, V components, K target steps.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data.fields.generate import FieldDataset, FieldGenConfig, generate, read_fields, write_fields
from data.schemas import RolloutBatch, RolloutExample, RolloutWindow, SeerDataModule

if TYPE_CHECKING:
    from data.series.corpus import CorpusConfig

PARTS = ("train", "val", "test")
COMPONENTS = ("u", "v", "w")
BOX = 2 * math.pi  # `data.fields.generate` solves on a periodic box of side 2π per axis
MAX_STEPS = 200  # the most steps one serving request may ask (the contract's default)
MAX_COST = float(16**3 * 200)  # the most grid points × steps one serving request may cost


def cache_root() -> Path:
    """Where generated datasets are kept (`SEER_FIELDS_CACHE`, default `./data_cache/fields`)."""
    return Path(os.environ.get("SEER_FIELDS_CACHE") or Path.cwd() / "data_cache" / "fields")


def cached_dataset(gen: FieldGenConfig, *, device: str = "cpu", progress: bool = True) -> Path:
    """The dataset file of `gen`: generated and written once (under a hash of every parameter), then reused."""
    key = json.dumps(gen.to_dict(), sort_keys=True)
    path = cache_root() / f"{gen.kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if not path.is_file():
        write_fields(path, generate(gen, device=device, progress=progress), gen)
    return path


def dataset_files(dataset: str) -> list[Path]:
    """Comma-separated `.npz` files, folders (every `.npz` in them) or globs, expanded and sorted per item."""
    files: list[Path] = []
    for item in (s.strip() for s in dataset.split(",")):
        if not item:
            continue
        if glob.has_magic(item):
            hits = sorted(Path(p) for p in glob.glob(item, recursive=True) if p.endswith(".npz"))
        elif Path(item).is_dir():
            hits = sorted(Path(item).glob("*.npz"))
        else:
            hits = [Path(item)]
        if not hits:
            raise FileNotFoundError(f"no fields dataset (.npz) matches {item!r}")
        files += hits
    return files


@dataclass(frozen=True, kw_only=True)
class RolloutDataConfig:
    """The rollout recipes' data: which trajectories, how they split, what a sample and a model step are."""

    uses_corpus: ClassVar[bool] = False

    dataset: str = ""  # fields .npz files, folders or globs (comma-separated); "": generate `generation`
    generation: FieldGenConfig = field(default_factory=FieldGenConfig)  # used when `dataset` is ""
    generate_device: str = "cpu"  # where the solver runs when the dataset is generated
    n_val: int = 1  # trajectories that validate (taken before the test ones)
    n_test: int = 1  # trajectories that test (the last ones)
    stride: int = 1  # snapshots per model step
    unroll: int = 2  # K: model steps each training sample's target holds (the pushforward/unroll length)
    pushforward: bool = True  # the loss takes no gradient through earlier steps (training.tasks.rollout)
    eval_steps: int = 10  # model steps each validation/test sample is rolled out and scored over
    eval_hop: int = 10  # snapshots between the starts of validation/test samples
    batch_size: int = 5
    mean: tuple[float, ...] = ()  # set (a bundle's, `for_bundle`): use it instead of fitting on train
    std: tuple[float, ...] = ()
    max_steps: int = MAX_STEPS
    max_cost: float = MAX_COST
    num_workers: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.generation, Mapping):  # `--set data.generation={...}` gives a dict
            object.__setattr__(self, "generation", FieldGenConfig.from_dict(dict(self.generation)))
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        counts = {k: getattr(self, k) for k in ("n_val", "n_test", "stride", "unroll", "eval_steps", "eval_hop")}
        if min(counts.values()) < 1 or self.batch_size < 1 or self.max_steps < 1 or not self.max_cost > 0:
            raise ValueError(f"counts, batch_size, max_steps and max_cost must be >= 1, got {counts}")
        if len(self.mean) != len(self.std) or any(not (s > 0 and math.isfinite(s)) for s in self.std):
            raise ValueError(f"mean and std must be equally long, std positive; got {self.mean}, {self.std}")

    @property
    def lookback(self) -> int:
        return 1  # one state in

    @property
    def horizon(self) -> int:
        return self.unroll

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        g = self.generation
        src = self.dataset or f"generated {g.kind}, {g.grid} DNS -> {g.stored_grid} per axis, seed {g.seed}"
        return (
            f"rollout data: {src}; split by trajectory ({self.n_val} val, {self.n_test} test); "
            f"train on {self.unroll}-step unrolls ({'pushforward' if self.pushforward else 'full backprop'}), "
            f"score {self.eval_steps}-step rollouts"
        )

    def datamodule(self, corpus: CorpusConfig | None = None) -> RolloutDataModule:
        if corpus is not None:
            raise ValueError("the rollout data takes no pretraining corpus")
        return RolloutDataModule(self)

    def for_bundle(self, transform: Mapping[str, Any]) -> RolloutDataConfig:
        """This data with a bundle's normalisation (to test that bundle; its grid must be the data's)."""
        return replace(self, mean=tuple(transform["mean"]), std=tuple(transform["std"]))

    def files(self) -> list[Path]:
        """The dataset files: `dataset` expanded, or the generated one (made now if not cached)."""
        if self.dataset.strip(", "):
            return dataset_files(self.dataset)
        return [cached_dataset(self.generation, device=self.generate_device)]


@dataclass(frozen=True)
class Trajectories:
    """Every trajectory of the dataset files, [T_i, *grid, V] float32 each, with what they share."""

    items: list[np.ndarray]
    configs: list[FieldGenConfig]  # one per file
    snapshot_dt: float  # simulated time between two snapshots


def read_trajectories(files: list[Path]) -> Trajectories:
    """The files' trajectories in order; they must share the grid, components and snapshot spacing."""
    sets: list[FieldDataset] = [read_fields(f) for f in files]
    first = sets[0].config
    spacing = first.save_every * first.dt
    for f, s in zip(files, sets, strict=True):
        c = s.config
        if s.u.shape[2:] != sets[0].u.shape[2:] or not math.isclose(c.save_every * c.dt, spacing, rel_tol=1e-9):
            raise ValueError(
                f"{f}: grid {s.u.shape[2:]} every {c.save_every * c.dt:g} time units does not match {files[0]}: "
                f"{sets[0].u.shape[2:]} every {spacing:g}"
            )
    items = [traj for s in sets for traj in s.u]
    return Trajectories(items=items, configs=[s.config for s in sets], snapshot_dt=spacing)


def split_trajectories(n: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    """Trajectory indices per part: the last `n_test` test, the `n_val` before them validate, the rest train."""
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} trajectories cannot give {n_val} val + {n_test} test and still one to train on")
    train_end, val_end = n - n_val - n_test, n - n_test
    return {"train": list(range(train_end)), "val": list(range(train_end, val_end)), "test": list(range(val_end, n))}


class WindowDataset(Dataset):
    """`RolloutWindow`s: (trajectory, start) → u at the start and the `steps` model steps after it."""

    def __init__(self, trajectories: list[np.ndarray], starts: list[tuple[int, int]], steps: int, stride: int):
        self.trajectories, self.starts, self.steps, self.stride = trajectories, starts, steps, stride

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> RolloutWindow:
        traj, s = self.starts[i]
        x = self.trajectories[traj]  # [T, *grid, V]
        end = s + self.stride * self.steps + 1
        return RolloutWindow(
            u=torch.from_numpy(np.ascontiguousarray(x[s])),
            target=torch.from_numpy(np.ascontiguousarray(x[s + self.stride : end : self.stride])),
        )


class RolloutDataModule(SeerDataModule):
    """Reads (or generates) the trajectories, splits them, fits the normalisation; module docstring."""

    def __init__(self, config: RolloutDataConfig):
        super().__init__()
        self.config = config
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c = self.config
        self.paths = c.files()
        self.data = read_trajectories(self.paths)
        self.parts = split_trajectories(len(self.data.items), c.n_val, c.n_test)
        self.grid = tuple(int(n) for n in self.data.items[0].shape[1:-1])
        self.n_components = int(self.data.items[0].shape[-1])
        if c.mean:
            if len(c.mean) != self.n_components:
                raise ValueError(f"the normalisation has {len(c.mean)} components, the data {self.n_components}")
            self.mean, self.std = np.asarray(c.mean), np.asarray(c.std)
        else:
            self.mean, self.std = self.fit_normalisation(self.parts["train"])
        for part in PARTS:
            if not self.starts(part):
                steps = c.unroll if part == "train" else c.eval_steps
                raise ValueError(
                    f"the {part} trajectories are too short for one {steps}-step sample at stride {c.stride} "
                    f"(they have {min(len(self.data.items[i]) for i in self.parts[part])} snapshots)"
                )
        self._ready = True

    def fit_normalisation(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-component mean and std [V] over every snapshot and grid point of these trajectories (float64)."""
        flat = np.concatenate([self.data.items[i].reshape(-1, self.n_components) for i in indices]).astype(np.float64)
        return flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-12)

    def starts(self, part: str) -> list[tuple[int, int]]:
        """(trajectory, start snapshot) of every sample of one part (module docstring)."""
        c = self.config
        steps, hop = (c.unroll, 1) if part == "train" else (c.eval_steps, c.eval_hop)
        span = c.stride * steps
        return [(i, s) for i in self.parts[part] for s in range(0, len(self.data.items[i]) - span, hop)]

    def dataset(self, part: str) -> WindowDataset:
        self.setup()
        steps = self.config.unroll if part == "train" else self.config.eval_steps
        return WindowDataset(self.data.items, self.starts(part), steps, self.config.stride)

    def loader(self, part: str) -> DataLoader:
        collate = functools.partial(
            RolloutBatch.collate,
            mean=torch.tensor(self.mean, dtype=torch.float32),
            std=torch.tensor(self.std, dtype=torch.float32),
            pushforward=self.config.pushforward,
        )
        return DataLoader(
            self.dataset(part),
            batch_size=self.config.batch_size,
            shuffle=part == "train",
            drop_last=False,
            num_workers=self.config.num_workers,
            collate_fn=collate,
        )

    def model_dims(self) -> dict[str, Any]:
        return {"grid": self.grid, "n_components": self.n_components}

    @property
    def dt(self) -> float:
        """Simulated time per model step."""
        return self.config.stride * self.data.snapshot_dt

    def generation(self) -> dict[str, Any]:
        """The dataset file's generation parameters (one file), or every file's (`{"files": [...]}`)."""
        if len(self.data.configs) == 1:
            return self.data.configs[0].to_dict()
        return {"files": [cfg.to_dict() for cfg in self.data.configs]}

    def transform_meta(self) -> dict[str, Any]:
        """The bundle's transform (the rollout task contract): grid, components, normalisation, time step, box,
        the serving bounds, the dataset and its generation parameters."""
        self.setup()
        c = self.config
        return {
            "grid": list(self.grid),
            "components": list(COMPONENTS[: self.n_components]),
            "mean": [float(x) for x in self.mean],
            "std": [float(x) for x in self.std],
            "dt": float(self.dt),
            "domain": [BOX] * len(self.grid),
            "max_steps": int(c.max_steps),
            "max_cost": float(c.max_cost),
            "dataset": c.dataset or ",".join(p.name for p in self.paths),
            "generation": self.generation(),
        }

    def transform_state(self, model: nn.Module | None = None) -> dict[str, Any]:
        return self.transform_meta()

    def test_snapshot(self) -> np.ndarray:
        """The first snapshot of the first test trajectory, [*grid, V] in physical units."""
        self.setup()
        return self.data.items[self.parts["test"][0]][0]

    def example_input(self) -> dict[str, Any]:
        """A real test snapshot (physical units, 6 decimals) and 2 steps, as a request."""
        return {"field": np.round(self.test_snapshot().astype(np.float64), 6).tolist(), "steps": 2}

    def signature_example(self) -> None:
        """No MLflow input example: a nested [X][Y](Z)[V] field has no tensor signature MLflow can enforce (the
        bundle's `example_input` is the request example)."""
        return None

    def evaluation_example(self) -> RolloutExample:
        """The first test trajectory from its first snapshot over `eval_steps` model steps (or what it holds)."""
        self.setup()
        c, traj = self.config, self.data.items[self.parts["test"][0]]
        steps = min(c.eval_steps, (len(traj) - 1) // c.stride)
        truth = traj[: c.stride * steps + 1 : c.stride]
        title = f"first test trajectory, {steps} steps of dt {self.dt:g}"
        return RolloutExample(
            truth=truth,
            components=list(COMPONENTS[: self.n_components]),
            domain=[BOX] * len(self.grid),
            dt=float(self.dt),
            title=title,
        )
