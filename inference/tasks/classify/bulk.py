"""Scoring a whole file of flows in constant memory: CSV arriving in pieces, or a Parquet file.

A file is cut into chunks of at most `chunk_rows` flows, read as frames: `CsvChunks` takes the bytes of
a CSV as they arrive (`feed`) and gives back the chunks its whole lines make; `parquet_chunks` reads a
Parquet file one record batch at a time (Parquet keeps its index at the end, so an upload is spooled to
disk first). `FlowStream` turns each chunk into a `ClassifyInput` whose first rows are the last W-1
flows of the chunk before (`context`), so every flow is scored with the window it would get in one pass
over the whole file, while memory holds one chunk. `ndjson_lines` and `ParquetSink` turn a chunk's
probabilities into the response. A chunk that cannot be read (a value that is not a number, a line
with too few fields, a missing column) raises `Refused` naming the rows or columns and what to fix.
`score_file` runs all of it in one thread (benchmarks, tests, the pyfunc-free path).

Shapes: T flows in a chunk, c context flows (c < W), F features, K classes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from data.flows.formats import get_format
from data.flows.readers import check_frame
from data.series.readers import DataFormatError
from inference.tasks.classify.predictor import ClassifyPredictor
from inference.tasks.classify.request import ClassifyInput, refuse

MAX_LINE = 64 * 1024  # bytes of one CSV line: a "line" longer than this is not a flow record


class FlowStream:
    """Consecutive chunks of one file as model inputs, carrying the window context from chunk to chunk;
    `rows` counts the flows handed out so far (the next chunk's first row number)."""

    def __init__(self, predictor: ClassifyPredictor):
        self.p = predictor
        self.fmt = get_format(predictor.transform.format)
        self.context = np.zeros((0, len(predictor.transform.features)), np.float32)
        self.rows = 0

    def next_input(self, frame: pl.DataFrame) -> ClassifyInput:
        try:
            checked = check_frame(frame, self.fmt, where=f"rows {self.rows}..{self.rows + frame.height - 1}")
        except DataFormatError as e:
            raise refuse(str(e), "file") from None
        flows = np.concatenate([self.context, self.p.transform.encode(checked)])  # [c + T, F]
        inp = ClassifyInput(flows, context=len(self.context))
        keep = self.p.window - 1
        self.context = flows[len(flows) - keep :] if keep else flows[:0]
        self.rows += frame.height
        return inp


class CsvChunks:
    """A CSV of flows fed in pieces (`feed(bytes)`), handed out as frames of `chunk_rows` complete lines
    (`next_chunk()`, None until a whole chunk has arrived; `next_chunk(final=True)` after the last piece
    hands out the rest). The first line is the header: the model's feature columns must be in it (other
    columns are ignored). Only the bytes not handed out yet are kept."""

    def __init__(self, predictor: ClassifyPredictor, chunk_rows: int):
        self.p = predictor
        self.chunk_rows = chunk_rows
        self.header: bytes | None = None
        self.buf = bytearray()
        self.pos = 0  # the first byte of `buf` not handed out yet
        self.rows = 0  # data rows handed out so far
        self.schema: dict[str, pl.DataType] = {}

    def feed(self, data: bytes) -> None:
        if self.pos > len(self.buf) // 2:  # drop what was handed out, now and then (not per chunk: O(n²))
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data
        if self.header is None:
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) > MAX_LINE:
                    raise refuse(f"the CSV header is longer than {MAX_LINE} bytes", "file")
                return
            self._read_header(bytes(self.buf[: end + 1]))
            self.pos = end + 1
        if len(self.buf) - max(self.buf.rfind(b"\n"), self.pos) > MAX_LINE:
            raise refuse(f"a line after row {self.rows} is longer than {MAX_LINE} bytes: not a flow record", "file")

    def next_chunk(self, final: bool = False) -> pl.DataFrame | None:
        if final and self.header is None:
            raise refuse("the upload is empty or has no header line: send a CSV with the feature names first", "file")
        cut, n = self.pos - 1, 0
        while n < self.chunk_rows:  # the end of the chunk_rows-th line (each find scans one line)
            nxt = self.buf.find(b"\n", cut + 1)
            if nxt < 0:
                break
            cut, n = nxt, n + 1
        if n < self.chunk_rows and final and self.buf[cut + 1 :].strip():  # a last line without its newline
            cut, n = len(self.buf) - 1, n + 1
        if n == 0 or (n < self.chunk_rows and not final):
            return None
        body = bytes(self.buf[self.pos : cut + 1])
        self.pos = cut + 1
        first, self.rows = self.rows, self.rows + n
        assert self.header is not None
        try:
            return pl.read_csv(io.BytesIO(self.header + body), schema=self.schema, has_header=True)
        except pl.exceptions.PolarsError as e:
            why = str(e).splitlines()[0][:200]
            raise refuse(
                f"rows {first}..{first + n - 1} are not {self.p.transform.format} flows: {why}", "file"
            ) from None

    def _read_header(self, line: bytes) -> None:
        names = [n.strip().strip('"') for n in line.decode("utf-8", errors="replace").rstrip("\r\n").split(",")]
        features = self.p.transform.features
        missing = [f for f in features if f not in names]
        if missing:
            raise refuse(f"the CSV header lacks the model's feature columns {missing}", "file")
        text = set(get_format(self.p.transform.format).string_features)
        # The model's numeric features as numbers; everything else (addresses, labels, extra columns) as text.
        self.schema = {n: (pl.Float64() if n in features and n not in text else pl.Utf8()) for n in names}
        self.header = line


def csv_chunks(predictor: ClassifyPredictor, pieces: Iterable[bytes], chunk_rows: int) -> Iterator[pl.DataFrame]:
    """The frames of a CSV arriving as `pieces`, in one thread."""
    csv = CsvChunks(predictor, chunk_rows)
    for piece in pieces:
        csv.feed(piece)
        while (frame := csv.next_chunk()) is not None:
            yield frame
    while (frame := csv.next_chunk(final=True)) is not None:
        yield frame


def parquet_chunks(predictor: ClassifyPredictor, path: str | Path, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """A Parquet file of flows, one record batch of the model's feature columns at a time."""
    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise refuse(f"the upload is not a readable Parquet file: {str(e)[:200]}", "file") from None
    missing = [f for f in predictor.transform.features if f not in set(source.schema_arrow.names)]
    if missing:
        raise refuse(f"the Parquet file lacks the model's feature columns {missing}", "file")
    for batch in source.iter_batches(batch_size=chunk_rows, columns=list(predictor.transform.features)):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def score_file(predictor: ClassifyPredictor, chunks: Iterable[pl.DataFrame]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, probabilities [T, K]) per chunk, in one thread."""
    stream = FlowStream(predictor)
    for frame in chunks:
        first = stream.rows
        (out,) = predictor.predict_batch([stream.next_input(frame)])
        if isinstance(out, Exception):
            raise out
        yield first, out.probabilities


def prediction_rows(p: ClassifyPredictor, first: int, probs: np.ndarray) -> Iterator[dict[str, Any]]:
    """One record per flow: row, label, probability (of that label), attack_score (1 - P(benign)), scores."""
    for i, (label, row) in enumerate(zip(p.labels_of(probs), probs.tolist(), strict=True)):
        yield {
            "row": first + i,
            "label": label,
            "probability": max(row),
            "attack_score": 1.0 - row[0],  # class 0 is benign
            "scores": dict(zip(p.classes, row, strict=True)),
        }


def ndjson_lines(p: ClassifyPredictor, first: int, probs: np.ndarray) -> bytes:
    """A chunk's predictions as NDJSON, one line per flow."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in prediction_rows(p, first, probs)).encode()


class _Drain(io.RawIOBase):
    """A write-only file that keeps what was written until `take()` hands it out; `tell()` counts every
    byte ever written, so the Parquet writer's offsets stay right."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.parts.append(data)
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class ParquetSink:
    """Predictions as a Parquet stream: each chunk becomes a row group, and `write` hands back the bytes
    written so far (nothing accumulates); `close()` writes the footer. Columns: row, label, probability,
    attack_score, and p_<class> per class."""

    def __init__(self, p: ClassifyPredictor):
        self.p = p
        self.buffer = _Drain()
        fields = [("row", pa.int64()), ("label", pa.string()), ("probability", pa.float32())]
        fields += [("attack_score", pa.float32())] + [(f"p_{c}", pa.float32()) for c in p.classes]
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(self.buffer, self.schema)

    def write(self, first: int, probs: np.ndarray) -> bytes:
        columns: list[Any] = [
            np.arange(first, first + len(probs)),
            self.p.labels_of(probs),
            probs.max(axis=1),
            1.0 - probs[:, 0],
            *probs.T,
        ]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        return self.buffer.take()

    def close(self) -> bytes:
        self.writer.close()
        return self.buffer.take()
