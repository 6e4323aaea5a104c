"""ART recipes (task denoise): EEG artifact removal trained on ICA pairs and semi-synthetic pairs of the
shipped recordings (`data.eeg`), split by time inside each recording.

- `eeg-art`: the official ART settings (30-channel template, 4 s windows at 256 Hz = 1,024 tokens, 2 + 2
  layers, d 128, 8 heads, feed-forward 2,048, dropout 0.1; ~2.5 M parameters) on both recordings: a GPU
  recipe (an epoch is hours on 2 CPU cores).
- `eeg-art-eegmmidb`: the same model on EEGMMIDB S001R01 alone (its ICA pairs, ocular artifacts from the
  EEGLAB recording's EOG channels).
- `eeg-art-cpu`: the model shrunk to train on 2 CPU cores in about an hour: 2 s windows at 128 Hz
  (256 tokens), d 64, 4 heads, feed-forward 256, same 2 + 2 layers, same data and pairs. The bench rows
  (`bench/eeg_accuracy.py`) come from this recipe.
`--smoke` (every recipe): the tiny model on 0.5 s windows at 128 Hz over the first 40 s of EEGMMIDB.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from data.eeg.windows import DenoiseDataConfig
from signals.eeg_artifact import ARTConfig
from training.recipes.recipe import Recipe, TrainerConfig, tiny_model

BOTH = "eegmmidb-s001r01,eeglab-sample"


def tiny(recipe: Recipe) -> Recipe:
    """Tiny model, short windows over 40 s of one recording, few test SNRs, few ICA components."""
    data = dataclasses.replace(
        recipe.data,
        dataset="eegmmidb-s001r01",
        sfreq=128.0,
        window_s=0.5,
        hop_s=0.5,
        max_seconds=40.0,
        ica_components=8,
        test_snrs=(-7.0, 2.0),
        val_snrs=(-7.0, 2.0),
        batch_size=8,
    )
    return dataclasses.replace(tiny_model(recipe), data=data)


def art(
    name: str, dataset: str, model: ARTConfig, data: DenoiseDataConfig, trainer: TrainerConfig, about: str
) -> Recipe:
    return Recipe(
        name=name,
        model="art",
        model_config=model,
        data=dataclasses.replace(data, dataset=dataset),
        trainer=trainer,
        registered_name=name,
        description=about,
        tiny=tiny,
    )


def eeg_art() -> Recipe:
    return art(
        "eeg-art",
        BOTH,
        ARTConfig(),
        DenoiseDataConfig(sfreq=256.0, window_s=4.0, hop_s=0.5, batch_size=16),
        TrainerConfig(max_epochs=40, patience=6, lr=5e-4, lr_decay=0.95, gradient_clip_val=1.0),
        "ART, official settings (30 ch, 4 s at 256 Hz, 2+2 layers, d 128), ICA + semi-synthetic pairs, both recordings",
    )


def eeg_art_eegmmidb() -> Recipe:
    return art(
        "eeg-art-eegmmidb",
        "eegmmidb-s001r01",
        ARTConfig(),
        DenoiseDataConfig(sfreq=256.0, window_s=4.0, hop_s=0.5, batch_size=16),
        TrainerConfig(max_epochs=40, patience=6, lr=5e-4, lr_decay=0.95, gradient_clip_val=1.0),
        "ART, official settings, on EEGMMIDB S001R01 (EOG artifacts from the EEGLAB recording)",
    )


def eeg_art_cpu() -> Recipe:
    return art(
        "eeg-art-cpu",
        BOTH,
        ARTConfig(d_model=64, n_heads=4, d_ff=256, dropout=0.1),
        DenoiseDataConfig(sfreq=128.0, window_s=2.0, hop_s=1.0, batch_size=16),
        TrainerConfig(max_epochs=8, patience=3, lr=1e-3, lr_decay=0.85, gradient_clip_val=1.0),
        "ART shrunk for 2 CPU cores (2 s at 128 Hz, d 64, ff 256, 2+2 layers), ICA + semi-synthetic pairs",
    )


RECIPES: dict[str, Callable[[], Recipe]] = {
    "eeg-art": eeg_art,
    "eeg-art-eegmmidb": eeg_art_eegmmidb,
    "eeg-art-cpu": eeg_art_cpu,
}
