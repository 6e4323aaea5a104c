"""`POST /v1/models/{name}/classify/bulk`: a file of flows in, one prediction per flow out, streamed.

A CSV (`Content-Type: text/csv`) or Parquet (`application/vnd.apache.parquet`) file of flow records in
the order they were recorded (a NetFlow v2 or NSL-KDD file as exported, with a header; extra columns
ignored) comes back as NDJSON (one line per flow: row, label, probability, attack_score, scores; the
default) or Parquet (`?format=parquet`), streamed. CSV is read as it arrives and scored in chunks of
SEER_CLASSIFY_CHUNK_ROWS flows, each chunk with the last W-1 flows of the one before as context, each
through the model's batcher like any other request (in its heavy lane where the service has one), so
the route holds a chunk, never the file. Parquet keeps its index at its end, so it is spooled to a
temporary file first and then read one record batch at a time. The upload is bounded
(SEER_CLASSIFY_MAX_UPLOAD_BYTES, 413) and so are the uploads scored at once (SEER_CLASSIFY_MAX_STREAMS,
503). What is wrong before the first answer (a missing column, an empty file) is a 4xx; what is wrong
later (a bad value at row 700,000) ends an NDJSON stream with `{"error": ..., "field": ..., "status": ...}`
as its last line, and cuts a Parquet stream short (no footer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

from inference.predictor import Reason, Refused
from inference.tasks.classify import ClassifyOutput, ClassifyPredictor
from inference.tasks.classify.bulk import CsvChunks, FlowStream, ParquetSink, ndjson_lines, parquet_chunks
from service.deps import model_of, refused, submit
from service.errors import ServiceError
from service.store import LoadedModel
from service.task import Job
from service.tasks.classify.batch import BulkInput
from service.tasks.classify.settings import BulkSettings

TASK = ClassifyPredictor.task
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/parquet", "application/x-parquet")
OUTPUT_TYPES = {"ndjson": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
PIECE = 1 << 20  # bytes of the upload handed to the CSV reader at a time

bulk_settings = BulkSettings()
_streams = {"open": 0}  # bulk uploads being scored in this process


BULK_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
BULK_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "one prediction per flow, streamed: NDJSON lines {row, label, probability, attack_score, "
        "scores}, or a Parquet file with columns row, label, probability, attack_score, p_<class>",
        "content": {t: {"schema": {"type": "string"}} for t in OUTPUT_TYPES.values()},
    }
}


async def classify_bulk(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    request: Request,
    format: Annotated[Literal["ndjson", "parquet"], Query(description="what comes back")] = "ndjson",
) -> StreamingResponse:
    """Classify every flow of a CSV or Parquet file of flow records, streaming the answers back."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media not in CSV_TYPES + PARQUET_TYPES:
        got = media or "none"
        raise ServiceError(415, f"send the file as text/csv or application/vnd.apache.parquet (got {got[:80]!r})")
    if _streams["open"] >= bulk_settings.max_streams:
        raise ServiceError(503, "too many bulk uploads are being scored; retry shortly", headers={"Retry-After": "5"})
    _streams["open"] += 1
    try:
        answers = _answers(model, request, parquet=media in PARQUET_TYPES, fmt=format)
        first = await anext(answers)  # a problem found before any answer is still a 4xx
    except Refused as e:
        _streams["open"] -= 1
        raise refused(e.reason) from None
    except BaseException:
        _streams["open"] -= 1
        raise
    return StreamingResponse(_stream(first, answers), media_type=OUTPUT_TYPES[format])


async def _stream(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for piece in rest:
            yield piece
    except (Refused, ServiceError) as e:  # past the first answer: the status is sent, so say it in the body
        reason = e.reason if isinstance(e, Refused) else Reason(e.detail, e.field or "file", e.status_code)
        yield (json.dumps({"error": reason.message, "field": reason.field, "status": reason.status}) + "\n").encode()
    finally:
        _streams["open"] -= 1


async def _answers(model: LoadedModel, request: Request, *, parquet: bool, fmt: str) -> AsyncIterator[bytes]:
    """The response body in pieces: the first piece once the first chunk is scored (or the file turns out
    to hold no flow: then the NDJSON is empty, the Parquet a file of no rows)."""
    p: ClassifyPredictor = model.predictor  # type: ignore[assignment]
    rows = min(bulk_settings.chunk_rows, p.max_flows)
    stream, sink = FlowStream(p), ParquetSink(p) if fmt == "parquet" else None
    # The chunks go through the batcher like any request, but the body is still arriving while they do:
    # its `receive` is this route's alone (the streaming response notices a client that leaves).
    quiet = Request(request.scope, receive=_never)
    sent = False
    with contextlib.ExitStack() as stack:
        chunks: Iterator[pl.DataFrame] | AsyncIterator[pl.DataFrame]
        if parquet:
            spool = stack.enter_context(tempfile.NamedTemporaryFile(prefix="seer-bulk-", suffix=".parquet"))
            async for piece in _upload(request):
                spool.write(piece)
            spool.flush()
            chunks = parquet_chunks(p, spool.name, rows)
        else:
            chunks = _csv_chunks(p, request, rows)
        async for frame in _each(chunks):
            first = stream.rows
            chunk = await run_in_threadpool(stream.next_input, frame)
            out: ClassifyOutput = await submit(quiet, Job(model, BulkInput(chunk.flows, chunk.context)))
            if sink is not None:
                yield await run_in_threadpool(sink.write, first, out.probabilities)
            else:
                yield await run_in_threadpool(ndjson_lines, p, first, out.probabilities)
            sent = True
        if sink is not None:
            yield sink.close()
        elif not sent:
            yield b""


async def _each(chunks: Iterator[pl.DataFrame] | AsyncIterator[pl.DataFrame]) -> AsyncIterator[pl.DataFrame]:
    """Chunks from a file read in a worker thread (Parquet) or from the upload as it arrives (CSV)."""
    if isinstance(chunks, AsyncIterator):
        async for frame in chunks:
            yield frame
        return
    while (item := await run_in_threadpool(_next, chunks)) is not None:
        yield item


def _next(chunks: Iterator[pl.DataFrame]) -> pl.DataFrame | None:
    return next(chunks, None)


async def _csv_chunks(p: ClassifyPredictor, request: Request, rows: int) -> AsyncIterator[pl.DataFrame]:
    """The upload's chunks as the bytes arrive, each parsed in a worker thread."""
    csv = CsvChunks(p, rows)
    async for piece in _upload(request):
        csv.feed(piece)
        while (frame := await run_in_threadpool(csv.next_chunk)) is not None:
            yield frame
    while (frame := await run_in_threadpool(csv.next_chunk, True)) is not None:
        yield frame


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _upload(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, in pieces of at most PIECE bytes (a body that was read whole before
    the route ran comes as one piece: cut, so the CSV reader never copies more than a piece at a time),
    refused (413) past SEER_CLASSIFY_MAX_UPLOAD_BYTES."""
    limit, size = bulk_settings.max_upload_bytes, 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise ServiceError(413, f"the upload is larger than {limit} bytes (SEER_CLASSIFY_MAX_UPLOAD_BYTES)", "file")
        view = memoryview(piece)
        for start in range(0, len(view), PIECE):
            yield bytes(view[start : start + PIECE])
