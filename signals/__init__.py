"""Signal models: EEG artifact removal (task `denoise`) and network intrusion detection (task
`classify`). `SPECS` lists them for `inference.registry`; empty until the first model lands."""

from __future__ import annotations

from core.registry import ModelSpec

SPECS: tuple[ModelSpec, ...] = ()
