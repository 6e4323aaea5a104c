"""Batch scoring: one forecast per series for many series at once, from files (`seer score`) or on Spark.

`seer score MODEL_URI --input PATH_OR_GLOB --output PATH` reads CSV/Parquet with polars, lazily: a long
file (`unique_id, ds, y`) is read a pass of series at a time (at most `ROWS_PER_PASS` rows held), a wide
file (a time column + one column per series) a pass of columns at a time, after one pass over its time
column alone. The files of a glob are parts of one table (one per day, per store, ...): a series may
span files, and they must share one layout. Each series gives the model its last `lookback` points, and
gets one forecast of the model's horizon at the model's step (`unique_id, ds, yhat`, plus `q10`, `q50`,
... for probabilistic models), through the forecast predictor and its request rules, the code the service
answers with, so the numbers are the HTTP answer's for the same window.

Which series a model takes:
  any-variate models (`variates` null, e.g. Moirai-MoE): every series alone, as one variate; point models
      forecast `batch` series per forward pass, probabilistic ones one series per pass (its sample paths
      are its batch, and its seeded draws must not depend on its batch-mates, as in the service).
  fixed-variate models (a standard transform with named variates, e.g. iTransformer on ETTh1): the
      model's variates together, as one multivariate series: the columns of that name in a wide file, or
      the series of that `unique_id` in a long file (other series are left out); `unique_id` in the
      output is the variate's name.

A series the model cannot take (shorter than the lookback, off the model's step, NaN for a model that
allows none, ...) does not stop the job: it is skipped and written, with the reason, to
`<output>.errors.csv`; the summary counts them, and the command fails (status 2) only when no series at
all could be scored. A file that cannot be read (unknown type, no time column, missing variates) is one
line on stderr before anything is written.

`score_spark(frame, model_uri)` scores a long Spark DataFrame with the same code: the registered model
(pinned to one version on the driver, so a moving alias cannot mix versions) is loaded through MLflow's
pyfunc flavour once per Python worker, and grouped `applyInPandas` hands it buckets of whole series.
"""

from __future__ import annotations

import glob as globlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from data.series.readers import LONG_COLUMNS, DataFormatError, _parse_dates, find_date_column
from inference.predictor import Reason

ROWS_PER_PASS = 2_000_000  # long files: the most rows one pass over the file holds (series are never split)
DEFAULT_BATCH = 256  # series per forward pass (point models)
DEFAULT_LEVELS = (0.1, 0.5, 0.9)  # probabilistic models' quantile columns unless --quantiles says otherwise
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class Series:
    """One forecast to make: the ids of its variates (one for an any-variate model), its timestamps and
    values [T, N] sorted by time (all of them; the window is the last `lookback`)."""

    ids: tuple[str, ...]
    stamps: list[datetime]
    values: np.ndarray

    @property
    def name(self) -> str:
        return self.ids[0] if len(self.ids) == 1 else ",".join(self.ids)


@dataclass
class Totals:
    series: int = 0  # series scored
    rows: int = 0  # forecast rows written
    skipped: int = 0  # series skipped (see the errors file)


def quantile_column(level: float) -> str:
    """`q10` for 0.1, `q2_5` for 0.025: plain names (no dot), as Spark and SQL prefer."""
    return "q" + f"{100 * level:.6g}".replace(".", "_")


# Models.
def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """The forecast predictor of `model_uri` (a bundle or MLflow model folder, or a registered
    `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `NAME@ALIAS`, `NAME/VERSION`), warmed up.
    A ref that does not resolve is a `RefError` (one line)."""
    from inference.predictor import load_predictor

    local = Path(model_uri)
    if local.exists():
        predictor = load_predictor(local)
    else:
        name, version, uri = pin_version(model_uri, tracking_uri)
        with tempfile.TemporaryDirectory(prefix="seer-score-") as tmp:
            predictor = load_predictor(_download(name, version, uri, tmp))
    if predictor.task != "forecast":
        raise DataFormatError(f"{model_uri} is a {predictor.task} model; seer score forecasts series")
    predictor.warm_up()
    return predictor


def pin_version(model_uri: str, tracking_uri: str | None = None) -> tuple[str, str, str]:
    """(name, version, tracking URI) of a registered ref, the alias resolved now."""
    from seer.refs import RefError, check_registered, serve_tracking_uri
    from service.settings import parse_model_ref

    uri = tracking_uri or serve_tracking_uri()
    try:
        ref = parse_model_ref(model_uri)
    except ValueError:
        raise RefError(
            f"{model_uri!r} is neither an existing path nor a registered model "
            "(models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS or NAME/VERSION)"
        ) from None
    if ref.path is not None:
        raise RefError(f"{model_uri!r}: give a path as it is (no NAME=), or a registered NAME@ALIAS")
    check_registered(ref.name, uri, alias=ref.alias, version=ref.version)
    if ref.version is not None:
        return ref.name, ref.version, uri
    from seer.refs import _client

    return ref.name, str(_client(uri).get_model_version_by_alias(ref.name, str(ref.alias)).version), uri


def _download(name: str, version: str, uri: str, dst: str) -> str:
    import mlflow

    from seer.refs import _client

    location = _client(uri).get_model_version_download_uri(name, version)
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    return str(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=dst, tracking_uri=uri, registry_uri=registry
        )
    )


def chosen_levels(predictor: Any, levels: Sequence[float] | None) -> tuple[float, ...] | None:
    """The quantile levels to write: none for a point model (asking for some is an error), else the
    given ones or `DEFAULT_LEVELS`, checked by the request rules."""
    from inference.predictor import Refused
    from inference.tasks.forecast.request import check_levels

    if not predictor.probabilistic:
        if levels:
            raise DataFormatError(f"{predictor.name} gives point forecasts only; leave out --quantiles")
        return None
    try:
        return check_levels(predictor, list(levels) if levels else list(DEFAULT_LEVELS))
    except Refused as e:
        raise DataFormatError(f"--quantiles: {e.reason.message}") from None


# Forecasting (shared by the files and Spark).
def forecast(
    predictor: Any, series: Sequence[Series], levels: tuple[float, ...] | None, batch: int = DEFAULT_BATCH
) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """Forecasts of `series` in long format, and (name, reason) for each one skipped."""
    L = predictor.lookback
    inputs, kept, errors = [], [], []
    for s in series:
        if len(s.stamps) < L:
            errors.append((s.name, f"{len(s.stamps)} points; the model needs its lookback, {L}"))
            continue
        request = {"history": s.values[-L:], "timestamps": s.stamps[-L:], "quantiles": levels}
        parsed = predictor.parse(request)
        if isinstance(parsed, Reason):
            errors.append((s.name, parsed.message))
            continue
        inputs.append(parsed)
        kept.append(s)
    frames = []
    for start in range(0, len(inputs), batch):
        outputs = predictor.predict_batch(inputs[start : start + batch])
        for s, out in zip(kept[start : start + batch], outputs, strict=True):
            if isinstance(out, Exception):
                errors.append((s.name, str(out)))
            else:
                frames.append(_long(s, out, levels))
    return (pl.concat(frames) if frames else empty_output(levels)), errors


def _long(s: Series, out: Any, levels: tuple[float, ...] | None) -> pl.DataFrame:
    """One answer as long rows: per variate, h rows of (unique_id, ds, yhat, quantiles...)."""
    h = len(out.forecast)
    columns: dict[str, Any] = {
        "unique_id": np.repeat(np.array(s.ids, dtype=object), h),
        "ds": list(out.timestamps) * len(s.ids),
        "yhat": out.forecast.T.reshape(-1),  # [N, h] -> variate-major
    }
    for level in levels or ():
        columns[quantile_column(level)] = out.quantiles[level].T.reshape(-1)
    return pl.DataFrame(columns, schema=output_schema(levels))


def output_schema(levels: tuple[float, ...] | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "yhat": pl.Float64}
    schema.update({quantile_column(level): pl.Float64 for level in levels or ()})
    return schema


def empty_output(levels: tuple[float, ...] | None) -> pl.DataFrame:
    return pl.DataFrame(schema=output_schema(levels))


def long_series(frame: pl.DataFrame) -> list[Series]:
    """The series of a long frame (`unique_id, ds, y`), one per id, each sorted by time, in id order."""
    frame = frame.select(
        pl.col("unique_id").cast(pl.Utf8), _parse_dates(frame["ds"]).alias("ds"), pl.col("y").cast(pl.Float64)
    )
    if frame["unique_id"].null_count():
        raise DataFormatError("unique_id holds empty values: every row needs the id of its series")
    out = []
    for (uid,), part in sorted(frame.sort("ds").partition_by("unique_id", as_dict=True).items()):
        out.append(Series((str(uid),), part["ds"].to_list(), part["y"].to_numpy()[:, None]))
    return out


# Files.
def input_files(pattern: str) -> list[Path]:
    """The files a path or glob names, sorted; one type (CSV or Parquet) for all."""
    files = sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise FileNotFoundError(f"--input {pattern}: no such file (a path, or a glob such as 'data/*.parquet')")
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1:
        raise DataFormatError(f"--input {pattern}: mixes CSV and Parquet files; give one type")
    return files


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".txt")):
        return "csv"
    raise DataFormatError(f"{path}: unsupported file type (use .csv or .parquet; gzip: decompress it first)")


def scan(files: Sequence[Path]) -> pl.LazyFrame:
    """One lazy table over the files (rows of each appended; columns matched by name)."""
    scans = [pl.scan_parquet(f) if _kind(f) == "parquet" else pl.scan_csv(f, infer_schema_length=10_000) for f in files]
    return scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")


def _collect(lf: pl.LazyFrame, what: str) -> pl.DataFrame:
    """Collect with the streaming engine; a file polars cannot read is a one-line `DataFormatError`."""
    try:
        return lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFormatError(f"{what}: cannot read it: {first}") from None


def plan_long(lf: pl.LazyFrame, what: str, predictor: Any) -> tuple[list[list[str]], int]:
    """Passes over a long table: lists of ids whose rows sum to at most ROWS_PER_PASS (a larger series
    is a pass alone), in id order; and the series count. Fixed-variate models: one pass of their variates."""
    counts = _collect(lf.group_by(pl.col("unique_id").cast(pl.Utf8)).len().sort("unique_id"), what)
    if counts["unique_id"].null_count():
        raise DataFormatError(f"{what}: unique_id holds empty values: every row needs the id of its series")
    if not predictor.any_variates:
        missing = [v for v in predictor.variates if v not in set(counts["unique_id"].to_list())]
        if missing:
            raise DataFormatError(
                f"{what}: the model forecasts the variates {predictor.variates} together; no series with "
                f"unique_id {missing[:5]}"
            )
        return [list(predictor.variates)], 1
    passes: list[list[str]] = [[]]
    rows = 0
    for uid, n in counts.iter_rows():
        if passes[-1] and rows + n > ROWS_PER_PASS:
            passes.append([])
            rows = 0
        passes[-1].append(uid)
        rows += n
    return passes, counts.height


def read_long(lf: pl.LazyFrame, ids: list[str], what: str, predictor: Any) -> list[Series]:
    """The series of one pass."""
    frame = _collect(lf.filter(pl.col("unique_id").cast(pl.Utf8).is_in(ids)).select(LONG_COLUMNS), what)
    return series_of(frame, predictor)


def series_of(frame: pl.DataFrame, predictor: Any) -> list[Series]:
    """The series a long frame holds for this model: each id alone (any-variate models), or the model's
    variates together as one multivariate series (rows at the timestamps they share; other ids left out)."""
    if predictor.any_variates:
        return long_series(frame)
    names = list(predictor.variates)
    frame = frame.filter(pl.col("unique_id").cast(pl.Utf8).is_in(names))
    if frame.is_empty():
        return []
    frame = frame.with_columns(pl.col("unique_id").cast(pl.Utf8), _parse_dates(frame["ds"]).alias("ds"))
    wide = frame.pivot(on="unique_id", index="ds", values="y", aggregate_function="first").sort("ds")
    missing = [v for v in names if v not in wide.columns]
    if missing:
        raise DataFormatError(f"no series with unique_id {missing[:5]}; the model forecasts {names} together")
    return [Series(tuple(names), wide["ds"].to_list(), wide.select(names).cast(pl.Float64).to_numpy())]


def plan_wide(lf: pl.LazyFrame, what: str, predictor: Any, batch: int) -> tuple[str, list[list[str]], list[int]]:
    """A wide table: its time column, passes of value columns (`batch` series each; a fixed-variate
    model's variates in one), and the rows of the last `lookback` timestamps (all rows, if fewer)."""
    schema = lf.collect_schema()
    head = _collect(lf.head(50), what)
    date = find_date_column(head)
    numeric = [c for c, t in schema.items() if c != date and t.is_numeric()]
    if predictor.any_variates:
        if not numeric:
            raise DataFormatError(f"{what}: no numeric column to forecast beside {date!r}")
        columns = [numeric[i : i + batch] for i in range(0, len(numeric), batch)]
    else:
        missing = [v for v in predictor.variates if v not in schema]
        if missing:
            raise DataFormatError(
                f"{what}: the model forecasts the variates {predictor.variates} together; the file lacks "
                f"columns {missing[:5]} (its columns: {list(schema)[:8]})"
            )
        columns = [list(predictor.variates)]
    dates = _parse_dates(_collect(lf.select(date), what)[date])
    last = np.argsort(dates.to_numpy(), kind="stable")[-predictor.lookback :]
    return date, columns, sorted(int(i) for i in last)


def read_wide(
    lf: pl.LazyFrame, date: str, columns: list[str], rows: list[int], what: str, predictor: Any
) -> list[Series]:
    frame = _collect(lf.select(date, *columns).with_row_index("__row").filter(pl.col("__row").is_in(rows)), what)
    frame = frame.with_columns(_parse_dates(frame[date]).alias(date)).sort(date)
    stamps = frame[date].to_list()
    values = frame.select(columns).cast(pl.Float64).to_numpy()
    if predictor.any_variates:
        return [Series((c,), stamps, values[:, [j]]) for j, c in enumerate(columns)]
    return [Series(tuple(columns), stamps, values)]


def passes(files: Sequence[Path], what: str, predictor: Any, batch: int) -> tuple[Iterator[list[Series]], int]:
    """The series to score, a pass at a time, and how many there are (for the progress bar)."""
    lf = scan(files)
    try:
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataFormatError(f"{what}: cannot read it: {str(e).strip().splitlines()[0]}") from None
    if all(c in schema for c in LONG_COLUMNS):
        plan, total = plan_long(lf, what, predictor)
        return (read_long(lf, ids, what, predictor) for ids in plan), total
    if "unique_id" in schema or "ds" in schema and "y" in schema:
        lacking = [c for c in LONG_COLUMNS if c not in schema]
        raise DataFormatError(f"{what}: a long file needs the columns {', '.join(LONG_COLUMNS)}; it lacks {lacking}")
    date, columns, rows = plan_wide(lf, what, predictor, batch)
    total = sum(len(c) for c in columns) if predictor.any_variates else 1
    return (read_wide(lf, date, cols, rows, what, predictor) for cols in columns), total


class Writer:
    """Appends frames to one Parquet (row group per pass) or CSV file."""

    def __init__(self, path: Path, fmt: str, levels: tuple[float, ...] | None):
        self.path, self.fmt, self.levels = path, fmt, levels
        self._parquet: Any = None
        self._csv: Any = None

    def write(self, frame: pl.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table)
        else:
            header = self._csv is None
            if self._csv is None:
                self._csv = open(self.path, "wb")  # noqa: SIM115 (closed in `close`)
            frame.write_csv(self._csv, include_header=header)

    def close(self) -> None:
        if self._parquet is None and self._csv is None:
            self.write(empty_output(self.levels))  # nothing scored: still a file with the columns
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


def output_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataFormatError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    return "csv" if path.name.lower().endswith(".csv") else "parquet"


def errors_path(output: Path) -> Path:
    return output.with_name(output.name + ".errors.csv")


def score_files(
    predictor: Any,
    pattern: str,
    output: str | Path,
    *,
    fmt: str | None = None,
    batch: int = DEFAULT_BATCH,
    levels: Sequence[float] | None = None,
    progress: Any = None,
) -> tuple[Totals, int]:
    """Score every series of the files `pattern` names into `output`; skipped series (name, reason) go
    to `errors_path(output)`. `progress`: a tqdm-like bar (`total`, `update(n)`). Returns the totals and
    the number of series found."""
    if batch < 1:
        raise DataFormatError(f"--batch must be at least 1, got {batch}")
    output = Path(output)
    fmt = output_format(output, fmt)
    chosen = chosen_levels(predictor, levels)
    files = input_files(pattern)
    what = str(files[0]) if len(files) == 1 else f"{pattern} ({len(files)} files)"
    todo, found = passes(files, what, predictor, batch)
    if progress is not None:
        progress.total = found
    output.parent.mkdir(parents=True, exist_ok=True)
    writer, totals, errors = Writer(output, fmt, chosen), Totals(), []
    try:
        for series in todo:
            frame, skipped = forecast(predictor, series, chosen, batch)
            if frame.height:
                writer.write(frame)
            errors += skipped
            totals.series += len(series) - len(skipped)
            totals.rows += frame.height
            totals.skipped += len(skipped)
            if progress is not None:
                progress.update(len(series))
    finally:
        writer.close()
    bad = errors_path(output)
    if errors:
        pl.DataFrame(errors, schema=["unique_id", "error"], orient="row").write_csv(bad)
    elif bad.exists():
        bad.unlink()  # a previous run's errors would otherwise read as this run's
    return totals, found


def run(args: Any) -> int:
    """`seer score`: load the model, score the files with a progress bar, print the summary."""
    from tqdm import tqdm

    predictor = load_model(args.model_uri)
    try:
        levels = [float(v) for v in args.quantiles.split(",")] if args.quantiles else None
    except ValueError:
        raise DataFormatError(
            f"--quantiles {args.quantiles!r}: give numbers separated by commas, e.g. 0.1,0.5,0.9"
        ) from None
    with tqdm(unit=" series", desc="scoring", disable=None) as bar:
        totals, found = score_files(
            predictor, args.input, args.output, fmt=args.format, batch=args.batch, levels=levels, progress=bar
        )
    print(f"scored {totals.series} of {found} series with {predictor.name}: {totals.rows} rows -> {args.output}")
    if totals.skipped:
        bad = errors_path(Path(args.output))
        print(f"skipped {totals.skipped} series (too short or refused): the reasons are in {bad}")
    if totals.series == 0:
        raise DataFormatError(f"no series could be scored (see {errors_path(Path(args.output))})")
    return 0


# Spark.
_WORKER_MODELS: dict[str, Any] = {}  # target -> predictor, once per Python worker


def _worker_model(target: str, tracking_uri: str | None) -> Any:
    """The predictor of a pinned `models:/NAME/VERSION` (loaded as MLflow's pyfunc model, the registered
    artifact itself) or of a local bundle / model folder; cached for the worker's life."""
    if target not in _WORKER_MODELS:
        if target.startswith("models:/"):
            import mlflow

            mlflow.set_tracking_uri(str(tracking_uri))
            mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or str(tracking_uri))
            _WORKER_MODELS[target] = mlflow.pyfunc.load_model(target).unwrap_python_model().predictor
        else:
            from inference.predictor import load_predictor

            _WORKER_MODELS[target] = load_predictor(target)
    return _WORKER_MODELS[target]


def spark_schema(levels: tuple[float, ...] | None) -> str:
    """The DDL of `score_spark`'s answer: the forecast columns and `error` (null on forecast rows)."""
    quantiles = "".join(f", {quantile_column(level)} double" for level in levels or ())
    return f"unique_id string, ds timestamp_ntz, yhat double{quantiles}, error string"


def score_spark(
    frame: Any,
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    batch: int = DEFAULT_BATCH,
    levels: Sequence[float] | None = None,
    buckets: int | None = None,
) -> Any:
    """A long Spark DataFrame (`unique_id, ds, y`; ds a timestamp or ISO text) -> a Spark DataFrame of
    forecasts (`unique_id, ds, yhat`, quantile columns, `error`): the numbers of `seer score` on the same
    rows. A skipped series is one row with its reason in `error` and nulls elsewhere. Series are hashed
    into `buckets` groups (default: one per `batch` series), each scored by one `applyInPandas` call."""
    from pyspark.sql import functions as F

    local = Path(model_uri)
    if local.exists():
        target, uri = str(local.resolve()), None
    else:
        name, version, uri = pin_version(model_uri, tracking_uri)
        target = f"models:/{name}/{version}"  # every worker scores with this version, whatever the alias does
    predictor = _worker_model(target, uri)
    chosen = chosen_levels(predictor, levels)
    rows = frame.select(*LONG_COLUMNS)
    if predictor.any_variates:
        n = buckets or max(1, math.ceil(rows.select("unique_id").distinct().count() / batch))
        bucket = F.abs(F.hash("unique_id")) % n
    else:  # the variates are one series: one group
        rows, bucket = rows.filter(F.col("unique_id").isin(list(predictor.variates))), F.lit(0)

    def score(pdf: Any) -> Any:
        p = _worker_model(target, uri)
        out, errors = forecast(p, series_of(pl.from_pandas(pdf), p), chosen, batch)
        failed = pl.DataFrame(errors, schema=["unique_id", "error"], orient="row")
        return pl.concat([out.with_columns(error=pl.lit(None, pl.Utf8)), failed], how="diagonal").to_pandas()

    return rows.withColumn("__bucket", bucket).groupBy("__bucket").applyInPandas(score, spark_schema(chosen))
