"""Files a user might bring: a weekly wide CSV with its own column names (and a text column), and a
long Parquet file of several weekly series. Shared by the `seer` command's tests."""

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

STORES = ("north", "south", "east", "west", "online", "outlet", "wholesale")


def weekly_csv(path: Path, n: int = 260) -> Path:
    """Seven weekly series (a yearly cycle + noise) named after stores, a `week` column, a text column."""
    t = np.arange(n)
    rng = np.random.default_rng(0)
    cols = {s: 10 + np.sin(2 * np.pi * t / 52 + i) + 0.1 * rng.standard_normal(n) for i, s in enumerate(STORES)}
    weeks = [(date(2019, 1, 6) + timedelta(weeks=int(k))).isoformat() for k in t]
    pl.DataFrame({"week": weeks, **cols, "currency": ["EUR"] * n}).write_csv(path)
    return path


def long_parquet(path: Path, ids: tuple[str, ...] = ("sku-1", "sku-2", "sku-3"), n: int = 200) -> Path:
    """`unique_id, ds, y` rows of weekly series, one per id, shuffled (a reader must sort them)."""
    t = np.arange(n)
    parts = [
        pl.DataFrame(
            {
                "unique_id": uid,
                "ds": [datetime(2020, 1, 5) + timedelta(weeks=int(k)) for k in t],
                "y": 5 + np.cos(2 * np.pi * t / 52 + i),
            }
        )
        for i, uid in enumerate(ids)
    ]
    pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=0).write_parquet(path)
    return path
