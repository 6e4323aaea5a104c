"""Corpus pretraining: fixed-shape batches bucketed by variate count and held-out windows
(data/series/pretrain.py), the forecast objective's loss choice, the dense warm-up → k-means → centroid
MoE pipeline (training/recipes/moirai_moe.py), and a smoke run of the Moirai-MoE recipes that
registers a bundle rebuilding to the same outputs."""

import json
import math
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient

from data.schemas import ForecastBatch
from data.series.corpus import ZERO_SHOT_EXCLUDE, CorpusConfig
from data.series.pretrain import (
    EpochSampler,
    PretrainDataConfig,
    PretrainDataModule,
    VariateBatchSampler,
    corpus_window,
)
from forecasters.moirai_moe import MoiraiMoE, MoiraiMoEConfig
from inference.bundle import load_bundle
from inference.registry import get_spec
from training.recipes import RECIPES, apply_overrides, get_recipe, smoke
from training.recipes.moirai_moe import WarmupConfig, set_cluster_centroids
from training.run import train
from training.system import SeerSystem
from training.tasks import objective_for

L_, H_ = 32, 16


def tiny_dm(**corpus) -> PretrainDataModule:
    """Context range 16..64 is clipped to L=32 (shorter contexts left-padded), horizons 8..32 to H=16."""
    cfg = dict(context_length=(16, 64), horizon=(8, 32), epoch_size=48, n_synthetic=4, synthetic_length=128)
    cfg.update(corpus)
    data = PretrainDataConfig(lookback=L_, horizon=H_, batch_size=8, eval_windows=2)
    dm = PretrainDataModule(data, CorpusConfig(max_variates=5, **cfg))
    dm.setup()
    return dm


def observed_context(x: torch.Tensor) -> bool:  # x [B, L, n]: every series has an observed value
    return bool((~torch.isnan(x)).any(dim=1).all())


def test_train_batches_have_fixed_shapes_one_variate_count_and_no_empty_variate():
    dm = tiny_dm()
    assert dm.corpus_config.context_length == (16, 32) and dm.corpus_config.horizon == (8, 16)
    seen, short_context, short_horizon = 0, False, False
    for epoch in (0, 1):
        dm.sampler.set_epoch(epoch)  # what Lightning does through batch_sampler.sampler
        batches = list(dm.train_dataloader())
        # a fixed epoch length: Lightning validates when the batch index reaches the length it read once
        assert len(batches) == len(dm.train_dataloader()) == 48 // 8
        keys = [k for batch in dm.batch_sampler for k in batch]
        assert len(keys) == len(set(keys))  # an epoch that is too long drops items, never repeats them
        for batch in batches:
            assert isinstance(batch, ForecastBatch) and batch.loc is None and batch.scale is None
            x, x_mark, y, y_mark = batch.x, batch.x_mark, batch.y, batch.y_mark
            b, n = x.shape[0], x.shape[2]
            assert x.shape == (b, L_, n) and y.shape == (b, H_, n) and 1 <= n <= 5 and b <= 8
            assert x_mark.shape == (b, L_, 0) and y_mark.shape == (b, H_, 0)
            assert observed_context(x)
            short_context |= bool(torch.isnan(x[:, 0]).all(dim=-1).any())  # left-padded context
            short_horizon |= bool(torch.isnan(y[:, -1]).all(dim=-1).any())  # right-padded horizon
            seen += b
        assert len({batch.x.shape[2] for batch in batches}) > 1  # several variate counts per epoch
    assert dm.batch_sampler.skipped == 0 and seen <= 2 * 48
    assert short_context and short_horizon  # NaN-padded into the fixed frame
    keys = [k for batch in dm.batch_sampler for k in batch]  # the epoch travels with each index
    assert {e for e, _ in keys} == {1} and set(i for _, i in keys) <= set(range(48))


def test_variate_batch_sampler_groups_skips_and_reshuffles_per_epoch():
    sampler = EpochSampler(20, seed=3)
    sizes = {i: (None if i % 7 == 0 else 1 + i % 3) for i in range(20)}
    bs = VariateBatchSampler(sampler, lambda e, i: sizes[i], batch_size=4)
    batches = list(bs)
    assert bs.skipped == 3 and sorted(i for b in batches for _, i in b) == [i for i in range(20) if i % 7]
    assert all(len({sizes[i] for _, i in b}) == 1 and len(b) <= 4 for b in batches)
    assert len(bs) == len(batches) and list(bs) == batches  # deterministic within an epoch
    sampler.set_epoch(1)
    again = list(bs)
    assert {e for b in again for e, _ in b} == {1} and [[i for _, i in b] for b in again] != [
        [i for _, i in b] for b in batches
    ]
    assert len(list(VariateBatchSampler(sampler, lambda e, i: sizes[i], batch_size=4, drop_last=True))) == 3
    # a fixed epoch length, whatever the grouping gives: partial batches dropped first, or batches repeated
    for n in (2, 3, 9):
        fixed = VariateBatchSampler(sampler, lambda e, i: sizes[i], batch_size=4, n_batches=n)
        got = list(fixed)
        assert len(fixed) == len(got) == n and all(len({sizes[i] for _, i in b}) == 1 for b in got)
        if n <= 3:  # 17 items make 3 full batches of 4: none is dropped while n allows
            assert sorted(len(b) for b in got) == [4] * n


def test_heldout_windows_come_from_the_val_split_standardised_and_respect_exclude():
    dm = tiny_dm()
    assert set(dm.heldout_datasets) == {"ETTh1", "ETTh2", "ETTm1", "ETTm2", "weather", "exchange_rate"}
    names = set(dm.val_set.names)
    assert names == set(dm.heldout_datasets)
    for batch in dm.val_dataloader():
        x, y, loc, scale = batch.x, batch.y, batch.loc, batch.scale
        assert isinstance(batch, ForecastBatch) and loc is not None and scale is not None
        assert batch.x_mark.shape == (x.shape[0], L_, 0) and batch.y_mark.shape == (x.shape[0], H_, 0)
        assert x.shape[1:] == (L_, x.shape[2]) and y.shape[1] == H_ and x.shape[2] <= 5
        assert loc.shape == scale.shape == (x.shape[0], 1, x.shape[2]) and bool((scale > 0).all())
        assert observed_context(x)
    # weather's 21 variates are scored in 5 groups of at most 5; 2 windows each
    assert sum(name == "weather" for name in dm.val_set.names) == 2 * 5
    zs = tiny_dm(exclude=ZERO_SHOT_EXCLUDE)
    assert set(zs.val_set.names) == set(zs.test_set.names) == {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
    synthetic = tiny_dm(sources={"seasonal": 1.0})  # no real dataset: fresh synthetic items instead
    assert len(synthetic.val_set) == 2 and set(synthetic.val_set.names) == {"seasonal"}


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_system_trains_moirai_on_its_likelihood_and_itransformer_on_mse():
    torch.manual_seed(0)
    moirai = MoiraiMoE(MoiraiMoEConfig.tiny())
    x, y = torch.randn(4, 32, 3), torch.randn(4, 16, 3)
    batch = ForecastBatch.collate([corpus_window(x[i], y[i]) for i in range(4)])
    system = SeerSystem(moirai, task="forecast", lr=1e-3)
    assert "val_nll" in system.monitors and "val_nll" in system.metrics
    objective = objective_for("forecast")
    assert objective.bundle_meta(moirai) == {"probabilistic": True}
    seeded = lambda f, *a: torch.manual_seed(1) and f(*a)  # noqa: E731 (the same random scaling prefix)
    torch.testing.assert_close(seeded(system.training_step, batch, 0), seeded(moirai.loss, x, y), rtol=0, atol=0)
    aux = moirai.config.aux_loss_weight * moirai.aux_loss()
    torch.testing.assert_close(seeded(objective.nll, moirai, x, y), seeded(moirai.loss, x, y) - aux)

    spec = get_spec("itransformer")
    itr = spec.build(spec.config_cls.tiny()).eval()  # no dropout: the two passes must agree
    cfg = itr.config
    xb, yb = torch.randn(4, cfg.lookback, cfg.n_variates), torch.randn(4, cfg.horizon, cfg.n_variates)
    xm, ym = torch.randn(4, cfg.lookback, cfg.n_marks), torch.randn(4, cfg.horizon, cfg.n_marks)
    plain = SeerSystem(itr, task="forecast", lr=1e-3)
    assert "val_nll" not in plain.monitors and "val_nll" not in plain.metrics
    assert objective.bundle_meta(itr) == {}
    expected = F.mse_loss(itr(xb, xm, ym), yb)
    batch = ForecastBatch(x=xb, x_mark=xm, y=yb, y_mark=ym)
    torch.testing.assert_close(plain.training_step(batch, 0), expected, rtol=0, atol=0)


def test_cluster_centroids_come_from_the_dense_models_inputs():
    torch.manual_seed(0)
    cfg = MoiraiMoEConfig.tiny(router="centroid")
    moe, dense = MoiraiMoE(cfg), MoiraiMoE(cfg.replace(dense=True))
    xs = [torch.randn(2, 32, 3), torch.randn(3, 32, 1)]  # batches of different variate counts
    assert all(float(b.ffn.centroids.abs().sum()) == 0 for b in moe.blocks)
    tokens = set_cluster_centroids(moe, dense, xs, max_tokens=1000, iters=5)
    assert tokens == 2 * 4 * 3 + 3 * 4 * 1  # every context token (4 patches of 8) of both batches
    single = MoiraiMoE(cfg)
    set_cluster_centroids(single, dense, xs[:1], iters=5)
    reference = MoiraiMoE(cfg)
    reference.init_centroids(dense, xs[0], iters=5)  # one batch: exactly the model's own method
    for a, b in zip(single.blocks, reference.blocks, strict=True):
        assert torch.equal(a.ffn.centroids, b.ffn.centroids)
    with pytest.raises(ValueError, match="centroid"):
        set_cluster_centroids(MoiraiMoE(MoiraiMoEConfig.tiny()), dense, xs)


def test_moirai_recipes():
    assert {"moirai-moe-tiny", "moirai-moe-tiny-zeroshot", "moirai-moe-small", "moirai-moe-small-zeroshot"} <= set(
        RECIPES
    )
    assert get_recipe("moirai-moe-small-zeroshot").corpus.exclude == ("weather", "exchange_rate")
    tiny, small = get_recipe("moirai-moe-tiny"), get_recipe("moirai-moe-small")
    assert tiny.model_config.router == "centroid" and tiny.model_config.n_experts == 8
    assert isinstance(tiny.before_fit, WarmupConfig) and tiny.to_dict()["warmup"]["epochs"] == 3
    assert tiny.corpus is not None and tiny.corpus.exclude == () and tiny.trainer.monitor == "val_nll"
    assert get_recipe("moirai-moe-tiny-zeroshot").corpus.exclude == ZERO_SHOT_EXCLUDE
    assert (small.model_config.n_experts, small.trainer.precision) == (32, "bf16-mixed")
    assert tiny.data.dataset == "corpus" and tiny.to_dict()["corpus"]["sources"]["ett"] == 0.3
    over = apply_overrides(tiny, ['model.router="learned"', "corpus.epoch_size=64", "warmup.epochs=2"])
    assert (over.model_config.router, over.corpus.epoch_size, over.before_fit.epochs) == ("learned", 64, 2)
    assert smoke(over).model_config.router == "learned"
    with pytest.raises(ValueError, match="no corpus"):
        apply_overrides(get_recipe("itransformer-etth1"), ["corpus.epoch_size=3"])
    with pytest.raises(ValueError, match="monitor"):
        apply_overrides(tiny, ["trainer.monitor=val_loss"])


class KeepModel(L.Callback):
    """Holds the trained model (the main fit's test runs last)."""

    model = None

    def on_test_end(self, trainer, pl_module):
        self.model = pl_module.model


def test_smoke_run_registers_a_rebuildable_champion_after_the_centroid_warmup(tracking, tmp_path):
    keep = KeepModel()
    result = train(smoke(get_recipe("moirai-moe-tiny")), uri=tracking, callbacks=[keep])
    assert result.version == "1" and result.champion
    client = MlflowClient(tracking)
    assert str(client.get_model_version_by_alias("moirai-moe-tiny", "champion").version) == "1"
    run = client.get_run(result.run_id)
    assert run.data.tags["seer.dataset"] == "corpus" and run.data.params["corpus.sources.ett"] == "0.3"
    for key in ("val_nll", "val_mse", "test_nll", "best_val_nll", "warmup_val_nll", "warmup_train_loss"):
        assert key in run.data.metrics, key
    assert "plots" in {a.path for a in client.list_artifacts(result.run_id)}

    mlflow.set_tracking_uri(tracking)
    local = mlflow.artifacts.download_artifacts("models:/moirai-moe-tiny/1", dst_path=str(tmp_path / "dl"))
    model, meta = load_bundle(local)
    t = meta["transform"]
    assert t == {
        "kind": "instance",
        "scaler": None,
        "variates": None,
        "calendar_freq": "",
        "step_seconds": None,
        "lookback": 32,
        "horizon": 16,
        "max_horizon": 64,
        "dataset": "corpus",
    }
    assert meta["probabilistic"] is True
    history = torch.tensor(meta["example_input"]["history"], dtype=torch.float32)[None]
    assert history.shape == (1, 32, 3)
    for block in model.blocks:  # the warm-up's k-means centroids, saved and restored
        assert block.ffn.router_kind == "centroid" and float(block.ffn.centroids.abs().sum()) > 0
    trained = keep.model.cpu().eval()
    x = torch.cat([history, history * 0.5 + 1.0])
    with torch.no_grad():
        assert torch.equal(model(x), trained(x))
    assert json.loads(next(Path(local).rglob("config.json")).read_text())["recipe"] == "moirai-moe-tiny"

    # The pyfunc flavor takes any number of variates: its signature is an [L, N] float64 tensor.
    pyfunc = mlflow.pyfunc.load_model("models:/moirai-moe-tiny/1")
    spec = pyfunc.metadata.get_input_schema().inputs[0]
    assert spec.shape == (-1, -1)
    rng = np.random.default_rng(0)
    for n in (1, 5):
        window = rng.normal(size=(32, n))
        window[3, 0] = np.nan  # missing values are masked
        out = pyfunc.predict(window)
        assert out.shape == (16, n) and np.isfinite(out.to_numpy()).all()


def test_smoke_run_with_the_learned_router(tracking):
    recipe = smoke(apply_overrides(get_recipe("moirai-moe-tiny-zeroshot"), ['model.router="learned"']))
    result = train(recipe, uri=tracking)
    assert result.version == "1" and result.champion and result.registered_name == "moirai-moe-tiny-zeroshot"
    assert not any(k.startswith("warmup_") for k in result.metrics)  # no centroids to find
    assert math.isfinite(result.metrics["test_nll"]) and math.isfinite(result.metrics["test_mse"])
