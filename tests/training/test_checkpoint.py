"""Checkpoints without pickles: weights as safetensors, the rest read back with `weights_only=True` (a file
holding any other object is refused), written so that an interruption leaves the previous one whole,
and `--resume` only with the settings the checkpoint was made with."""

import pickle

import pytest
import torch
from safetensors.torch import load_file

from training.checkpoint import (
    BEST,
    STATE,
    WEIGHTS,
    DurationEstimate,
    load_checkpoint,
    read_resumable,
    save_checkpoint,
    write_run_info,
)


def state(scale: float = 1.0) -> dict:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    return {
        "epoch": 4,
        "batches_that_stepped": 40,
        "weights": {"w": torch.full((2, 3), scale), "b": torch.zeros(3)},
        "optimizers": [opt.state_dict()],
        "lr_schedulers": [{"last_epoch": 4, "base_lrs": [1e-3], "_last_lr": [6e-4]}],
        "callbacks": {
            "KeepBestWeights": {"best": 0.5, "best_epoch": 2, "weights": {"w": torch.full((2, 3), 7.0)}},
            "EarlyStopping{'monitor': 'val_mse'}": {"wait_count": 1, "best_score": torch.tensor(0.5), "patience": 3},
        },
        "torch_rng": torch.get_rng_state(),
    }


def test_round_trip_through_safetensors_and_a_weights_only_state(tmp_path):
    path = tmp_path / "last"
    saved = state()
    save_checkpoint(path, saved)
    assert sorted(p.name for p in path.iterdir()) == sorted([WEIGHTS, BEST, STATE])
    assert load_file(str(path / WEIGHTS))["w"].shape == (2, 3)
    back = load_checkpoint(path)
    assert torch.equal(back["weights"]["w"], torch.ones(2, 3))
    assert torch.equal(back["callbacks"]["KeepBestWeights"]["weights"]["w"], torch.full((2, 3), 7.0))
    assert back["optimizers"][0]["state"][0]["exp_avg"].shape == (3,) and back["epoch"] == 4
    assert torch.equal(back["torch_rng"], saved["torch_rng"])


class Payload:
    """What a tampered checkpoint might hold: unpickling it would call `os.system`."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_a_state_file_holding_an_object_is_refused(tmp_path):
    path = tmp_path / "last"
    save_checkpoint(path, state())
    torch.save({"epoch": 1, "evil": Payload()}, path / STATE)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)


def test_a_new_checkpoint_replaces_the_old_one_whole(tmp_path):
    path = tmp_path / "last"
    save_checkpoint(path, state(1.0))
    save_checkpoint(path, state(2.0))
    assert torch.equal(load_checkpoint(path)["weights"]["w"], torch.full((2, 3), 2.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no .partial / .old left behind


def test_resume_needs_a_checkpoint_and_the_same_settings(tmp_path):
    recipe = {"model_config": {"d_model": 16}, "trainer": {"max_epochs": 5, "patience": 3, "lr": 1e-3}}
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        read_resumable(tmp_path, recipe)
    write_run_info(tmp_path, "run-1", recipe)
    save_checkpoint(tmp_path / "last", state())
    longer = {**recipe, "trainer": {**recipe["trainer"], "max_epochs": 9, "patience": 5}}
    assert read_resumable(tmp_path, longer) == ("run-1", tmp_path / "last")  # may run longer
    wider = {**recipe, "model_config": {"d_model": 32}}
    with pytest.raises(ValueError, match="other settings \\(model_config.d_model: 16 -> 32\\)"):
        read_resumable(tmp_path, wider)


def test_the_expected_duration_is_said_after_the_first_steps(capsys):
    class Trainer:
        num_training_batches, num_val_batches, max_epochs, current_epoch = 50, [15], 80, 0
        progress_bar_callback = None

    estimate = DurationEstimate("training", steps=3)
    for _ in range(4):
        estimate.on_train_batch_end(Trainer(), None)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert out.startswith("expected duration of training: about ") and "for at most 80 epochs" in out
    assert "per epoch of 50 batches, measured on this machine" in out
