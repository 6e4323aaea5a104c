"""Dynamic batching per model, as Triton's dynamic batcher does it: concurrent requests queue up and run
together in one forward pass, off the event loop.

A batch starts when `max_batch` requests are queued, or when the oldest queued request has waited
`max_wait_s`, whichever comes first; one batch per model runs at a time, in the model's own worker
thread, and the requests that arrive meanwhile form the next batch. Each caller gets its own result or
its own exception: `run_batch` returns one of either per item (see `service.task.run_jobs`),
so one bad input never fails its batch-mates. A caller that gives up (timeout, disconnect) cancels its
future and is dropped from the queue before its batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")  # one request's validated input
R = TypeVar("R")  # one request's result


class QueueFull(Exception):
    """The model's queue holds `max_queue` requests already (the caller answers 503)."""


@dataclass
class _Waiting(Generic[T, R]):
    payload: T
    future: asyncio.Future[R]
    since: float  # loop time when it was queued


@dataclass
class MicroBatcher(Generic[T, R]):
    """Groups `submit` calls into `run_batch(payloads) -> [result or exception per payload]` calls.

    `on_batch(size, seconds)` hears of each finished batch (metrics). Not thread-safe: call `submit` from
    the event loop.
    """

    run_batch: Callable[[list[T]], list[R | Exception]]
    max_batch: int = 32
    max_wait_s: float = 0.002
    max_queue: int = 1024
    on_batch: Callable[[int, float], None] | None = None
    name: str = "model"
    _pending: deque[_Waiting[T, R]] = field(default_factory=deque)
    _busy: bool = False
    _timer: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Requests queued and not yet in a running batch."""
        return len(self._pending)

    async def submit(self, payload: T, timeout: float | None = None) -> R:
        """Queue one request and wait for its own result (or its own exception).

        Past `timeout` seconds, queued or running, it raises `TimeoutError` (a timer on the future, not
        `asyncio.wait_for`, which costs a task per request); a timed-out request is dropped from its queue.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first call, or the app now runs on a new loop (test clients do this)
            self._reset(loop)
        if len(self._pending) >= self.max_queue:  # drop the ones whose callers gave up, then decide
            self._pending = deque(w for w in self._pending if not w.future.done())
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are already queued for model {self.name!r}")
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append(_Waiting(payload, future, loop.time()))
        self._schedule(loop)
        if timeout is None:
            return await future
        timer = loop.call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    def close(self) -> None:
        """Stop the worker thread; queued callers are cancelled."""
        for w in self._pending:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already (a finished test client)
                w.future.cancel()
        self._pending.clear()
        if self._timer is not None:
            with contextlib.suppress(RuntimeError):
                self._timer.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        self.close()
        self._loop, self._busy, self._timer, self._task = loop, False, None, None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seer-batch-{self.name}")

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch now if it is full or its oldest request is due; else make sure a timer will."""
        if self._busy or not self._pending:
            return  # a running batch schedules the next one when it ends
        wait = self._pending[0].since + self.max_wait_s - loop.time()
        if len(self._pending) >= self.max_batch or wait <= 0:
            self._start(loop)
        elif self._timer is None:
            self._timer = loop.call_later(wait, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._busy and self._pending:
            self._start(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch: list[_Waiting[T, R]] = []
        while self._pending and len(batch) < self.max_batch:
            w = self._pending.popleft()
            if not w.future.done():  # cancelled callers (timeouts, disconnects) are dropped here
                batch.append(w)
        if not batch:
            self._schedule(loop)
            return
        self._busy = True
        self._task = loop.create_task(self._run(loop, batch))  # held: the loop keeps only weak references

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting[T, R]]) -> None:
        try:
            start = loop.time()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [w.payload for w in batch])
            except Exception as e:  # run_batch itself broke (a bug): every caller hears of it
                results = [e] * len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch), loop.time() - start)
            for w, result in zip(batch, results, strict=True):
                if w.future.done():
                    continue
                if isinstance(result, Exception):
                    w.future.set_exception(result)
                else:
                    w.future.set_result(result)
        finally:
            self._busy = False
            self._task = None
            self._schedule(loop)


def _expire(future: asyncio.Future[R], timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"not answered within {timeout:g} s"))


class BatcherPool(Generic[T, R]):
    """One `MicroBatcher` per model name, made on first use with the same settings."""

    def __init__(self, make: Callable[[str], MicroBatcher[T, R]]) -> None:
        self._make = make
        self._batchers: dict[str, MicroBatcher[T, R]] = {}

    def get(self, name: str) -> MicroBatcher[T, R]:
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = self._batchers[name] = self._make(name)
        return batcher

    def depths(self) -> dict[str, int]:
        return {name: b.depth for name, b in self._batchers.items()}

    def close(self) -> None:
        for b in self._batchers.values():
            b.close()
