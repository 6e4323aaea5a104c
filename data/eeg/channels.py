"""Channel names, the montage, and the map from a recording's channels onto a model's channel template.

Names from different labs differ in case, padding and vintage: `Fp1.` (EEGMMIDB's trailing dots),
`FPz`, `EEG Fp1-REF` (EDF exports), `T3` (the old 10-20 name of `T7`). `clean_name` strips what is not
the electrode, and `canonical` maps a name onto the standard 10-05 spelling (old 10-20 aliases included),
so two labs' labels for one electrode compare equal.

`channel_map(inputs, template)` is the linear map M [N, C] from C recorded channels to the N template
channels: a template channel that was recorded is copied (one-hot row); one that was not is interpolated
from the recorded ones by spherical splines over the standard montage positions (MNE's
`interpolate_bads`, Perrin et al. 1989). Too few recorded template channels, or a recorded channel the
montage does not know while it is needed, is a `ChannelMapError` listing what is expected.

Shapes: C recorded channels, N template channels, T samples.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# The 30 channels of ART's template (CNElab-Plus/ArtifactRemovalTransformer gradio/template_chanlocs.loc),
# in its order, with the modern names of the old 10-20 temporal/parietal labels (T3 T4 T5 T6).
ART_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FT7", "FC3", "FCz", "FC4", "FT8", "T7", "C3", "Cz",
    "C4", "T8", "TP7", "CP3", "CPz", "CP4", "TP8", "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2",
)  # fmt: skip
FRONTAL = ("Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F3", "Fz", "F4", "F8")
OLD_NAMES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}  # 10-20 (1958) -> 10-10 (ACNS 2006)
EOG_PATTERN = re.compile(r"^(H|V)?EOG|^EOG|^(LO|IO|SO)\d?$", re.IGNORECASE)
MIN_PRESENT = 0.5  # at least this fraction of a template's channels must be recorded to interpolate the rest


class ChannelMapError(ValueError):
    """A recording's channels cannot be mapped onto a template; the message lists what is expected."""


def clean_name(name: str) -> str:
    """The electrode part of a label: no EDF type prefix (`EEG `), no reference suffix (`-REF`, `-LE`,
    `-A1`), no dots or padding (`Fp1.` -> `Fp1`)."""
    text = name.strip()
    text = re.sub(r"^(EEG|EOG)[\s:_]+", lambda m: "" if m.group(1).upper() == "EEG" else m.group(0), text, flags=re.I)
    text = re.sub(r"[-_ ](REF|LE|RE|AR|AVG|A1|A2|M1|M2|CZ)$", "", text, flags=re.I)
    return text.strip(" .\t")


@lru_cache(maxsize=1)
def _standard_names() -> dict[str, str]:
    """Upper-case -> the standard 10-05 spelling, for every electrode of the standard montage."""
    return {name.upper(): name for name in standard_montage().ch_names}


def canonical(name: str) -> str:
    """The standard 10-05 spelling of a label (`FP1.` -> `Fp1`, `T3` -> `T7`); unknown names come back
    cleaned but otherwise as they are."""
    text = clean_name(name)
    upper = text.upper()
    for old, new in OLD_NAMES.items():
        if upper == old:
            return new
    return _standard_names().get(upper, text)


def is_eog(name: str) -> bool:
    """True for labels of eye channels (EOG1, HEOG, VEOG-L, LO1, ...)."""
    return bool(EOG_PATTERN.match(clean_name(name)))


def standard_montage():
    """MNE's standard 10-05 montage (renamed `colin27_1005` in MNE 1.13; the old name before that)."""
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return mne.channels.make_standard_montage("colin27_1005")
        except ValueError:
            return mne.channels.make_standard_montage("standard_1005")


@dataclass(frozen=True)
class ChannelMap:
    """M [N, C] from recorded channels to the template; `recorded[n]` is the input index of template
    channel n when it was recorded (-1 when interpolated)."""

    matrix: np.ndarray
    template: tuple[str, ...]
    inputs: tuple[str, ...]
    recorded: tuple[int, ...]

    @property
    def interpolated(self) -> list[str]:
        return [t for t, i in zip(self.template, self.recorded, strict=True) if i < 0]

    @property
    def unused(self) -> list[str]:
        """Recorded channels that are not template channels."""
        used = {i for i in self.recorded if i >= 0}
        return [name for i, name in enumerate(self.inputs) if i not in used]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """data [C, T] -> [N, T]."""
        return self.matrix @ data


def channel_map(inputs: tuple[str, ...], template: tuple[str, ...], min_present: float = MIN_PRESENT) -> ChannelMap:
    """The map from `inputs` (recorded labels, any spelling) onto `template` (canonical names); see the
    module docstring. Cached per pair of channel lists (a serving process sees few distinct montages)."""
    return _channel_map(tuple(inputs), tuple(template), float(min_present))


def match_channels(
    inputs: tuple[str, ...], template: tuple[str, ...], min_present: float = MIN_PRESENT
) -> tuple[int, ...]:
    """For each template channel, the index of the recorded channel with its name (-1: not recorded).
    Cheap (names only): a `ChannelMapError` listing the expected channels when names repeat or fewer than
    `min_present` of the template are recorded."""
    names = [canonical(n) for n in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ChannelMapError(f"channels {dupes} are given more than once (after name cleanup)")
    index = {n.upper(): i for i, n in enumerate(names)}
    recorded = tuple(index.get(t.upper(), -1) for t in template)
    missing = [t for t, i in zip(template, recorded, strict=True) if i < 0]
    present = len(template) - len(missing)
    if present < max(1, int(np.ceil(min_present * len(template)))):
        raise ChannelMapError(
            f"only {present} of the model's {len(template)} channels are in the request; expected channels "
            f"(10-10 names, any case; T3/T4/T5/T6 accepted): {', '.join(template)}; missing: {', '.join(missing)}"
        )
    return recorded


@lru_cache(maxsize=64)
def _channel_map(inputs: tuple[str, ...], template: tuple[str, ...], min_present: float) -> ChannelMap:
    recorded = match_channels(inputs, template, min_present)
    names = [canonical(n) for n in inputs]
    matrix = np.zeros((len(template), len(inputs)))
    for n, i in enumerate(recorded):
        if i >= 0:
            matrix[n, i] = 1.0
    missing = [t for t, i in zip(template, recorded, strict=True) if i < 0]
    if missing:
        matrix[[n for n, i in enumerate(recorded) if i < 0]] = _spline_rows(names, missing)
    return ChannelMap(matrix, template, inputs, recorded)


def _spline_rows(names: list[str], missing: list[str]) -> np.ndarray:
    """[len(missing), C]: each missing channel as a spherical-spline combination of the known recorded
    EEG channels (those with a standard position; the others get weight 0)."""
    import mne

    known = _standard_names()
    usable = [i for i, n in enumerate(names) if n.upper() in known and not is_eog(n)]
    if len(usable) < 3:
        raise ChannelMapError("too few recorded channels have standard 10-05 positions to interpolate from")
    chans = [names[i] for i in usable] + missing
    info = mne.create_info(chans, 100.0, "eeg")
    # Identity data: after interpolation the missing channels' rows are the interpolation weights.
    eye = np.vstack([np.eye(len(usable)), np.zeros((len(missing), len(usable)))])
    raw = mne.io.RawArray(eye, info, verbose="error")
    raw.set_montage(standard_montage(), match_case=False, verbose="error")
    raw.info["bads"] = list(missing)
    raw.interpolate_bads(reset_bads=True, origin="auto", verbose="error")
    weights = raw.get_data(picks=missing)  # [M, len(usable)]
    rows = np.zeros((len(missing), len(names)))
    rows[:, usable] = weights
    return rows
