"""The run both sides of the resume-equivalence test train (test_checkpoint_resume.py): a tiny
iTransformer on a user's weekly file, 5 epochs with dropout and shuffling, checkpointed every epoch."""

from pathlib import Path

import lightning as L
import torch

from training.recipes import apply_overrides, file_recipe
from training.run import train


def recipe(data: str):
    base = file_recipe("itransformer", data, 4, "resume-case")
    return apply_overrides(
        base,
        [
            "model.d_model=8",
            "model.d_ff=8",
            "model.n_heads=2",
            "trainer.max_epochs=5",
            "trainer.patience=5",
            "trainer.lr=0.001",
            "trainer.progress_bar=false",
        ],
    )


class Grab(L.Callback):
    """The weights the run ends with (the best ones, restored when fitting ends), as the test sees them."""

    state: dict[str, torch.Tensor] | None = None

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_checkpointed(recipe, ckpt: str, uri: str, callbacks: list, *, resume: bool):
    torch.set_num_threads(1)
    return train(recipe, register=False, uri=uri, callbacks=callbacks, checkpoints=Path(ckpt), resume=resume)
