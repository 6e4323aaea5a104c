"""The shipped EEG recordings (`data/eeg/datasets/`, gzip; provenance in SOURCE.md) by name.

`recording_path(name)` takes a catalogue name (`eegmmidb-s001r01`, `eeglab-sample`) or a path to any
EDF/BDF/FIF/SET file; a shipped file is decompressed once into a cache folder (the EEGLAB `.set`
beside the `.fdt` it names), checked against its SHA-256, and the path of the copy is returned.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import tempfile
from pathlib import Path

EEG_SUFFIXES = (".edf", ".bdf", ".fif", ".set")

DATASETS = Path(__file__).resolve().parent / "datasets"

# name -> (main file, companion files that must sit beside it)
CATALOGUE: dict[str, tuple[str, tuple[str, ...]]] = {
    "eegmmidb-s001r01": ("S001R01.edf", ()),
    "eeglab-sample": ("eeglab_data.set", ("eeglab_data.fdt",)),
}
SHA256 = {
    "S001R01.edf": "4743b736131a7e147c150e8b37711029b6cda5e356c4b3e8261a03cdcaaf8b0c",
    "eeglab_data.set": "27594dc378685d25d5f5f762f4f8332e7a3d988b6d5d41832bb2252d93988718",
    "eeglab_data.fdt": "3ec388b9a080c723c00cd380403d64cc754929d828375bbd53bd83b468136759",
}


def cache_dir() -> Path:
    """Where shipped files are decompressed (`SEER_EEG_CACHE`, default: the temp folder)."""
    return Path(os.environ.get("SEER_EEG_CACHE") or Path(tempfile.gettempdir()) / "seer-eeg")


def _decompressed(name: str, folder: str) -> Path:
    target = cache_dir() / folder / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = gzip.decompress((DATASETS / f"{name}.gz").read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[name]:
        raise ValueError(f"{name}.gz decompresses to SHA-256 {digest}, expected {SHA256[name]}")
    # Written under a temporary name and renamed, so a concurrent reader never sees half a file.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(raw)
    os.replace(tmp.name, target)
    return target


def recording_path(name: str) -> Path:
    """The path of a catalogue recording (decompressed) or of a file given by path."""
    if name in CATALOGUE:
        main, companions = CATALOGUE[name]
        folder = SHA256[main][:16]  # one folder per recording: an EEGLAB .set finds its .fdt beside it
        for companion in companions:
            _decompressed(companion, folder)
        return _decompressed(main, folder)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no EEG recording {name!r}: give a file path or one of {', '.join(CATALOGUE)}")
    return path


def expand_recordings(dataset: str) -> list[str]:
    """A comma-separated list of catalogue names, files, folders (their EEG files) and globs, expanded in
    order (each folder's and glob's files sorted by name); an item that matches nothing is an error."""
    out: list[str] = []
    for item in (part.strip() for part in dataset.split(",")):
        if not item:
            continue
        if item in CATALOGUE or Path(item).is_file():
            out.append(item)
            continue
        if Path(item).is_dir():
            found = sorted(str(p) for p in Path(item).iterdir() if p.suffix.lower() in EEG_SUFFIXES)
        else:
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in EEG_SUFFIXES)
        if not found:
            raise FileNotFoundError(f"no EEG recording matches {item!r} (catalogue: {', '.join(CATALOGUE)})")
        out.extend(found)
    return out


def recording_key(name: str) -> str:
    """What identifies a recording's content for caches: the catalogue name, or path + size + mtime."""
    if name in CATALOGUE:
        return name
    st = Path(name).stat()
    return f"{Path(name).resolve()}:{st.st_size}:{st.st_mtime_ns}"
