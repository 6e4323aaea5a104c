"""Data room, the ground floor: readers, splits, scalers, typed batches, DataModules and shipped datasets.

Laid out by domain (`series/` for time series; `eeg/`, `flows/`, `fields/` as their families land).
It imports only `core` and never builds or runs a model. The transform state it fits travels inside the
model bundle (`inference.bundle`), so serving applies exactly what training did.
"""
