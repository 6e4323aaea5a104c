"""Typed batches (data/schemas.py): the collate, Lightning's device transfer, and both DataModules
(a dataset's protocol split and the pretraining corpus) yielding `ForecastBatch` and offering the same
`SeerDataModule` methods a run uses."""

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from data.schemas import ForecastBatch, ForecastExample, ForecastWindow, SeerDataModule
from data.series.corpus import CorpusConfig
from data.series.pretrain import PretrainDataConfig, corpus_window
from data.series.windows import ForecastDataConfig


def window(n: int = 2, loc: bool = False) -> ForecastWindow:
    stats = {"loc": torch.zeros(1, n), "scale": torch.ones(1, n)} if loc else {}
    return ForecastWindow(
        x=torch.randn(5, n), x_mark=torch.randn(5, 3), y=torch.randn(4, n), y_mark=torch.randn(4, 3), **stats
    )


def test_collate_stacks_windows_of_one_shape():
    b = ForecastBatch.collate([window(), window(), window()])
    assert (b.size, b.x.shape, b.x_mark.shape, b.y.shape, b.y_mark.shape) == (
        3,
        (3, 5, 2),
        (3, 5, 3),
        (3, 4, 2),
        (3, 4, 3),
    )
    assert b.loc is None and b.scale is None
    scored = ForecastBatch.collate([window(loc=True), window(loc=True)])
    assert scored.loc.shape == scored.scale.shape == (2, 1, 2)
    with pytest.raises(ValueError, match="one shape"):
        ForecastBatch.collate([window(2), window(3)])
    with pytest.raises(ValueError, match="one shape"):
        ForecastBatch.collate([window(loc=True), window()])
    with pytest.raises(ValueError, match="at least one"):
        ForecastBatch.collate([])


def test_lightning_moves_a_batch_field_by_field():
    b = ForecastBatch.collate([window(loc=True), window(loc=True)])
    moved = move_data_to_device(b, torch.device("cpu"))
    assert isinstance(moved, ForecastBatch) and torch.equal(moved.x, b.x) and torch.equal(moved.scale, b.scale)
    plain = move_data_to_device(ForecastBatch.collate([window()]), torch.device("cpu"))
    assert plain.loc is None and plain.scale is None


def check_contract(dm: SeerDataModule, loader, lookback: int, horizon: int, marks: int) -> ForecastBatch:
    """What training.run uses of any DataModule, and the batches it yields."""
    batch = next(iter(loader))
    assert isinstance(batch, ForecastBatch)
    b, n = batch.size, batch.x.shape[2]
    assert batch.x.shape == (b, lookback, n) and batch.y.shape == (b, horizon, n)
    assert batch.x_mark.shape == (b, lookback, marks) and batch.y_mark.shape == (b, horizon, marks)
    dims = dm.model_dims()
    assert (dims["lookback"], dims["horizon"], dims["n_marks"]) == (lookback, horizon, marks)
    example = dm.evaluation_example()
    assert isinstance(example, ForecastExample)
    assert example.history.shape == (lookback, len(example.names)) and example.truth.shape == (
        horizon,
        len(example.names),
    )
    np.testing.assert_allclose(np.asarray(dm.example_input()["history"]), example.history)
    return batch


def test_the_dataset_module_yields_scaled_batches():
    data = ForecastDataConfig(dataset="ETTh1", lookback=24, horizon=12, batch_size=4)
    dm = data.datamodule()
    dm.setup()
    batch = check_contract(dm, dm.val_dataloader(), 24, 12, 4)
    assert batch.loc is None and batch.size == 4 and dm.model_dims()["n_variates"] == 7
    assert dm.transform_state()["variates"] == dm.variates and dm.transform_state(None)["lookback"] == 24
    frame = dm.signature_example()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["date", *dm.variates] and len(frame) == 24
    assert dm.evaluation_example().timestamps == dm.example_input()["timestamps"]
    assert data.for_bundle({"lookback": 8, "horizon": 4, "variates": ["OT"]}) == ForecastDataConfig(
        dataset="ETTh1", lookback=8, horizon=4, batch_size=4, variates=("OT",)
    )
    with pytest.raises(ValueError, match="no pretraining corpus"):
        data.datamodule(CorpusConfig())


def test_the_corpus_module_yields_original_unit_batches():
    data = PretrainDataConfig(lookback=32, horizon=16, batch_size=4, eval_windows=1)
    corpus = CorpusConfig(
        sources={"ETTh1": 1.0}, context_length=(32, 32), horizon=(16, 16), epoch_size=8, max_variates=3
    )
    dm = data.datamodule(corpus)
    dm.setup()
    train = check_contract(dm, dm.train_dataloader(), 32, 16, 0)
    assert train.loc is None
    held = check_contract(dm, dm.test_dataloader(), 32, 16, 0)
    assert held.loc is not None and held.scale.shape == (held.size, 1, held.x.shape[2])
    assert dm.model_dims()["n_variates"] == 3
    assert isinstance(dm.signature_example(), np.ndarray) and dm.evaluation_example().timestamps is None
    assert data.for_bundle({"lookback": 64, "horizon": 8}).lookback == 64
    with pytest.raises(ValueError, match="corpus"):
        data.datamodule(None)
    w = corpus_window(torch.zeros(32, 2), torch.zeros(16, 2))
    assert w.x_mark.shape == (32, 0) and w.y_mark.shape == (16, 0) and w.loc is None
