"""Moirai-MoE recipes: pretraining on the corpus mixture, and the dense warm-up that gives the centroid
router its token clusters (the recipes' `before_fit` hook, `WarmupConfig`).

Shapes: B batch, L context steps, n variates of a batch, D d_model, X experts.

Pretraining (`moirai_moe`): ETT, weather and exchange_rate train rows plus the KernelSynth, seasonal and
random-walk generators, in `DEFAULT_MIXTURE` proportions (`data.series.corpus`), as fixed-shape windows
(`data.series.pretrain`). Every window has a fixed context L and horizon H (the served lookback and
point horizon; sampled quantiles reach max_horizon); early stopping on the NLL of held-out windows of
the val splits.

Dense warm-up (router "centroid", Moirai-MoE's token clusters). `dense_warmup` trains a `dense=True`
copy of the model (same config, a dense SwiGLU of width top_k·d_expert in place of the experts) on the
same batches for `WarmupConfig.epochs`, keeping its best validation weights; runs it over
`centroid_batches` training batches, collecting each layer's feed-forward inputs (`ffn_inputs`,
subsampled to at most `centroid_tokens` per layer); and sets each MoE layer's centroids to the k-means
(X clusters, k-means++ seeding) of that layer's inputs (`set_cluster_centroids`, over many batches of
different n). The MoE model then trains from scratch with these fixed centroids, as in the paper;
`transfer=True` starts it from the dense model's shared weights instead (embedding, attention, norms,
head; the experts stay fresh), so its first routing already follows the clusters. Both stages log to
the same MLflow run, the warm-up's metrics prefixed `warmup_`. A model that does not route by
centroids (`--set model.router=learned`, or `dense`) skips the warm-up: there are no clusters to find.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from core.nn.moe import MoEFeedForward, kmeans
from data.schemas import SeerDataModule
from data.series.corpus import DEFAULT_MIXTURE, ZERO_SHOT_EXCLUDE, CorpusConfig
from data.series.pretrain import PretrainDataConfig
from data.series.windows import ForecastDataConfig
from forecasters.moirai_moe import MoiraiMoE, MoiraiMoEConfig
from training.recipes.recipe import FitContext, Recipe, TrainerConfig, tiny_model
from training.system import KeepBestWeights, SeerSystem


@dataclass(frozen=True, kw_only=True)
class WarmupConfig:
    """The dense warm-up that gives a centroid-routed MoE its token clusters (see the module docstring);
    a recipe's `before_fit` hook, overridable as the `warmup.` section."""

    section: ClassVar[str] = "warmup"

    epochs: int = 1  # dense warm-up epochs (corpus epochs of the recipe's epoch size)
    limit_train_batches: int | float = 1.0  # per warm-up epoch
    lr: float | None = None  # None: the recipe's trainer.lr
    centroid_batches: int = 16  # training batches run through the dense model for k-means
    centroid_tokens: int = 65_536  # at most this many feed-forward inputs per layer (a random subset)
    kmeans_iters: int = 50
    transfer: bool = False  # start the MoE from the dense model's non-expert weights
    seed: int = 0  # token subsampling and k-means++ seeding

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.centroid_batches < 1 or self.kmeans_iters < 1:
            raise ValueError("warm-up epochs, centroid_batches and kmeans_iters must be >= 1")
        if self.lr is not None and self.lr <= 0:
            raise ValueError("warm-up lr must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __call__(self, ctx: FitContext) -> dict[str, float]:
        """The warm-up of a centroid-routed model (`dense_warmup`); nothing for any other model."""
        model = ctx.model
        if not (isinstance(model, MoiraiMoE) and routes_by_centroids(model.config)):
            return {}
        t = ctx.recipe.trainer
        lr = self.lr or t.lr
        warm = dataclasses.replace(t, max_epochs=self.epochs, limit_train_batches=self.limit_train_batches, lr=lr)
        logger = ctx.make_logger("warmup_")
        return dense_warmup(
            model,
            ctx.datamodule,
            self,
            task=ctx.recipe.task,
            lr=lr,
            lr_decay=t.lr_decay,
            monitor=t.monitor,
            make_trainer=lambda extra: ctx.make_trainer(warm, logger, extra),
        )


def routes_by_centroids(cfg: MoiraiMoEConfig) -> bool:
    """A mixture-of-experts config (not the dense variant) whose router is the centroid one."""
    return cfg.router == "centroid" and not cfg.dense


def _moe_layers(model: MoiraiMoE) -> list[MoEFeedForward]:
    layers = [b.ffn for b in model.blocks]
    moe = [f for f in layers if isinstance(f, MoEFeedForward) and f.router_kind == "centroid"]
    if not layers or len(moe) != len(layers):
        raise ValueError("centroids need an MoE model whose every layer has router='centroid'")
    return moe


@torch.no_grad()
def set_cluster_centroids(
    model: MoiraiMoE,
    dense: MoiraiMoE,
    batches: Sequence[torch.Tensor],
    *,
    max_tokens: int = 65_536,
    iters: int = 50,
    seed: int = 0,
) -> int:
    """`model.init_centroids(dense, x)` over several inputs x [B, L, n] (n may differ between them):
    each layer's centroids become the k-means (X clusters) of the dense model's feed-forward inputs at
    that layer over all the inputs' context tokens (a random subset of at most `max_tokens` per layer,
    drawn evenly from the inputs). Returns the number of tokens clustered per layer."""
    layers = _moe_layers(model)
    cfg, src = model.config, dense.config
    if (src.d_model, src.n_layers) != (cfg.d_model, cfg.n_layers):
        raise ValueError("the dense model must have the same d_model and n_layers")
    if not batches:
        raise ValueError("no batches to cluster")
    per_batch = math.ceil(max_tokens / len(batches))  # keeps memory at ~max_tokens rows per layer
    gen = torch.Generator().manual_seed(seed)
    was_training = dense.training
    dense.eval()
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    for x in batches:
        for store, h in zip(per_layer, dense.ffn_inputs(x), strict=True):
            if h.shape[0] > per_batch:
                h = h[torch.randperm(h.shape[0], generator=gen)[:per_batch].to(h.device)]
            store.append(h.float())
    dense.train(was_training)
    n_tokens = 0
    for layer, chunks in zip(layers, per_layer, strict=True):
        h = torch.cat(chunks)[:max_tokens]
        layer.set_centroids(kmeans(h, layer.n_experts, iters=iters, seed=seed))
        n_tokens = int(h.shape[0])
    return n_tokens


@torch.no_grad()
def transfer_shared_weights(dense: nn.Module, model: nn.Module) -> int:
    """Copy every tensor outside the feed-forward layers (same name and shape) from `dense` into
    `model`: embedding, attention, norms, head. Returns how many tensors were copied."""
    target = model.state_dict()
    copied = 0
    for name, value in dense.state_dict().items():
        if ".ffn." in name or name not in target or target[name].shape != value.shape:
            continue
        target[name].copy_(value)
        copied += 1
    return copied


def dense_warmup(
    model: MoiraiMoE,
    dm: SeerDataModule,
    warmup: WarmupConfig,
    *,
    task: str,
    lr: float,
    lr_decay: float,
    monitor: str,
    make_trainer: Callable[[list[L.Callback]], L.Trainer],
) -> dict[str, float]:
    """The centroid pipeline: train a dense copy of `model`, cluster its feed-forward inputs, set
    `model`'s router centroids (and, with `warmup.transfer`, its shared weights).

    `make_trainer(callbacks)` builds the warm-up's Trainer (its epochs, batch limits and logger: a
    `warmup_`-prefixed logger puts the curves in the main run). Returns the `warmup_` summary
    metrics: best epoch, best monitored value, epochs, tokens clustered per layer, tensors transferred.
    """
    _moe_layers(model)
    dense = MoiraiMoE(model.config.replace(dense=True))
    system = SeerSystem(dense, task=task, lr=lr, lr_decay=lr_decay)
    best = KeepBestWeights(monitor)
    trainer = make_trainer([best])
    trainer.fit(system, datamodule=dm)
    device = trainer.strategy.root_device
    dense.to(device)
    model.to(device)
    xs = [batch.x.to(device) for batch in islice(iter(dm.train_dataloader()), warmup.centroid_batches)]
    tokens = set_cluster_centroids(
        model, dense, xs, max_tokens=warmup.centroid_tokens, iters=warmup.kmeans_iters, seed=warmup.seed
    )
    copied = transfer_shared_weights(dense, model) if warmup.transfer else 0
    model.cpu()
    metrics = {
        "warmup_epochs": float(trainer.current_epoch),
        "warmup_best_epoch": float(best.best_epoch),
        "warmup_tokens": float(tokens),
        "warmup_transferred": float(copied),
    }
    if best.best is not None:
        metrics[f"warmup_best_{monitor}"] = best.best
    return metrics


# "tiny": the CPU model (MoiraiMoEConfig.cpu(): 4 layers, D 128, 8 experts × 256, top-2; centroid
#   router after a dense warm-up), L 256 (16 patches of 16), H 64 (4 patches). An epoch is 1600
#   windows (~54 batches of 32 once grouped by variate count); warm-up + 10 epochs take well under
#   an hour on 2 CPU cores (measured: forecasters/moirai_moe/README.md, "Training").
# "small": the paper's Small (6 layers, D 384, 32 experts × 512) for one GPU in bf16, L 512, H 64.
MOIRAI_WINDOW: dict[str, tuple[int, int]] = {"tiny": (256, 64), "small": (512, 64)}  # (L, H)


def moirai_moe(size: str = "tiny", zero_shot: bool = False) -> Recipe:
    """Moirai-MoE pretrained on the corpus mixture: `size` "tiny" (CPU) or "small" (GPU, the paper's
    Small); `zero_shot` keeps `ZERO_SHOT_EXCLUDE` (weather, exchange_rate) out of training and validation."""
    if size not in MOIRAI_WINDOW:
        raise ValueError(f"size must be one of {sorted(MOIRAI_WINDOW)}, got {size!r}")
    exclude = ZERO_SHOT_EXCLUDE if zero_shot else ()
    lookback, horizon = MOIRAI_WINDOW[size]
    window: dict[str, Any] = dict(context_length=(lookback, lookback), horizon=(horizon, horizon))
    if size == "tiny":
        model_config = MoiraiMoEConfig.cpu(router="centroid")
        data = PretrainDataConfig(lookback=lookback, horizon=horizon, batch_size=32, eval_windows=8)
        corpus = CorpusConfig(sources=dict(DEFAULT_MIXTURE), exclude=exclude, epoch_size=1_600, **window)
        warmup = WarmupConfig(epochs=3, centroid_batches=16)
        trainer = TrainerConfig(
            max_epochs=80, patience=8, lr=1e-3, lr_decay=0.97, monitor="val_nll", gradient_clip_val=1.0, seed=0
        )
        what = "CPU model (4 layers, D 128, 8 experts, top-2)"
    else:
        model_config = MoiraiMoEConfig.small(router="centroid")
        data = PretrainDataConfig(lookback=lookback, horizon=horizon, batch_size=128, eval_windows=64, num_workers=4)
        corpus = CorpusConfig(sources=dict(DEFAULT_MIXTURE), exclude=exclude, epoch_size=25_600, **window)
        warmup = WarmupConfig(epochs=2, centroid_batches=32)
        trainer = TrainerConfig(
            max_epochs=40,
            patience=5,
            lr=1e-3,
            lr_decay=0.93,
            monitor="val_nll",
            gradient_clip_val=1.0,
            seed=0,
            accelerator="gpu",
            precision="bf16-mixed",
        )
        what = "the paper's Small (6 layers, D 384, 32 experts × 512, top-2) on one GPU, bf16"
    name = f"moirai-moe-{size}" + ("-zeroshot" if zero_shot else "")
    held_out = f", {' and '.join(exclude)} held out for zero-shot evaluation" if exclude else ""
    return Recipe(
        name=name,
        model="moirai_moe",
        model_config=model_config,
        data=data,
        trainer=trainer,
        registered_name=name,
        description=f"Moirai-MoE pretrained on the corpus mixture: {what}, context {lookback}, "
        f"horizon {horizon}{held_out}",
        corpus=corpus,
        before_fit=warmup,
        tiny=tiny_pretraining,
    )


def tiny_pretraining(recipe: Recipe) -> Recipe:
    """`smoke`'s shrink of a pretraining recipe: the tiny model (keeping its router, so
    `--set model.router=learned --smoke` smoke-tests the learned router), a tiny corpus epoch (32
    windows of the tiny model's lookback and horizon, 8 synthetic series per generator), 2 held-out
    windows per dataset, and a one-epoch 2-batch warm-up."""
    tiny = MoiraiMoEConfig.tiny(router=recipe.model_config.router)
    corpus = recipe.corpus and dataclasses.replace(
        recipe.corpus,
        context_length=(tiny.lookback, tiny.lookback),
        horizon=(tiny.horizon, tiny.horizon),
        epoch_size=32,
        n_synthetic=8,
        synthetic_length=256,
    )
    data = recipe.data
    if isinstance(data, PretrainDataConfig):
        data = dataclasses.replace(
            data, lookback=tiny.lookback, horizon=tiny.horizon, batch_size=8, eval_windows=2, num_workers=0
        )
    warmup = recipe.before_fit
    if isinstance(warmup, WarmupConfig):
        warmup = dataclasses.replace(warmup, epochs=1, limit_train_batches=2, centroid_batches=2, kmeans_iters=10)
    return dataclasses.replace(recipe, model_config=tiny, data=data, corpus=corpus, before_fit=warmup)


# The pretrained tiny model shipped with the repository (pretrained/README.md: recipe, commit, scores).
PRETRAINED_TINY = Path(__file__).resolve().parents[2] / "pretrained" / "moirai-moe-tiny"


@dataclass(frozen=True, kw_only=True)
class FromPretrained:
    """Start from a pretrained bundle's weights (fine-tuning): the `init.` section of a file recipe;
    `bundle=""` trains from scratch (then the router must be `learned`: no warm-up finds centroids)."""

    section: ClassVar[str] = "init"

    bundle: str = str(PRETRAINED_TINY)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __call__(self, ctx: FitContext) -> dict[str, float]:
        from inference.bundle import load_bundle

        model = ctx.model
        if not self.bundle:
            if isinstance(model, MoiraiMoE) and routes_by_centroids(model.config):
                raise ValueError('from scratch (init.bundle="") needs --set model.router=learned')
            return {}
        if not Path(self.bundle).exists():
            raise FileNotFoundError(f'init.bundle {self.bundle} not found (--set init.bundle="" trains from scratch)')
        pretrained, _ = load_bundle(self.bundle)
        try:
            model.load_state_dict(pretrained.state_dict(), strict=True)
        except RuntimeError as e:
            raise ValueError(f"{self.bundle} does not fit this model config (keep the model.* settings): {e}") from e
        return {"init_tensors": float(len(pretrained.state_dict()))}


def moirai_moe_file(path: str, *, horizon: int, name: str, targets: tuple[str, ...] = ()) -> Recipe:
    """Moirai-MoE fine-tuned on a user's file from the shipped pretrained tiny model (`FromPretrained`):
    its config, context 256 (less for a short file), no calendar features (the model uses none), the
    70/10/20 split, lr 1e-4, early stopping on the validation NLL. `--smoke` trains the tiny config from
    scratch instead."""
    data = ForecastDataConfig.from_file(path, horizon, lookback=256, targets=targets, calendar=False, batch_size=32)
    init = FromPretrained()
    config = MoiraiMoEConfig.cpu(router="centroid")
    if Path(init.bundle).exists():
        config = MoiraiMoEConfig.from_dict(json.loads((Path(init.bundle) / "config.json").read_text())["model_config"])
    return Recipe(
        name=name,
        model="moirai_moe",
        model_config=config.replace(max_horizon=max(config.max_horizon, horizon)),
        data=data,
        trainer=TrainerConfig(
            max_epochs=10, patience=3, lr=1e-4, lr_decay=0.9, monitor="val_nll", gradient_clip_val=1.0, seed=0
        ),
        registered_name=name,
        description=f"Moirai-MoE fine-tuned from {init.bundle} on {path}, context {data.lookback}, horizon {horizon}",
        before_fit=init,
        tiny=lambda r: dataclasses.replace(tiny_model(r), before_fit=FromPretrained(bundle="")),
    )


FILE_RECIPES = {"moirai_moe": moirai_moe_file}

RECIPES: dict[str, Callable[[], Recipe]] = {
    "moirai-moe-tiny": lambda: moirai_moe("tiny"),
    "moirai-moe-tiny-zeroshot": lambda: moirai_moe("tiny", zero_shot=True),
    "moirai-moe-small": lambda: moirai_moe("small"),
    "moirai-moe-small-zeroshot": lambda: moirai_moe("small", zero_shot=True),
}
