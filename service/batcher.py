"""Dynamic batching per model, as Triton's dynamic batcher does it: concurrent requests queue up and run
together in one forward pass, off the event loop.

A batch starts when `max_batch` requests are queued, or when the oldest queued request has waited
`max_wait_s`, whichever comes first; one batch per model runs at a time, in the model's own worker
thread, and the requests that arrive meanwhile form the next batch. Each caller gets its own result or
exception (`run_batch` returns one per item, see `service.task.run_jobs`): one bad input never fails
its batch-mates. A caller that gives up (timeout, its client disconnected)
is dropped from the queue before its batch runs, and a batch whose callers have all given up stops at
its model's next checkpoint (`inference.predictor.work_scope`): no work goes on for nobody.

With a `Gate` (`service.lanes`) the batches of a model's two lanes take turns on it at its checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from inference.predictor import work_scope
from service.lanes import HEAVY, LIGHT, Gate

T = TypeVar("T")  # one request's validated input
R = TypeVar("R")  # one request's result


class QueueFull(Exception):
    """The model's queue holds `max_queue` requests already (the caller answers 503)."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work for it was dropped."""


@dataclass
class _Waiting(Generic[T, R]):
    payload: T
    future: asyncio.Future[R]
    since: float  # loop time when it was queued
    gone: threading.Event = field(default_factory=threading.Event)  # set once its caller stops waiting


@dataclass
class MicroBatcher(Generic[T, R]):
    """Groups `submit` calls into `run_batch(payloads) -> [result or exception per payload]` calls.

    `on_batch(size, seconds)` hears of each finished batch (metrics); `gate`, `heavy`: see the module
    docstring. Not thread-safe: call `submit` from the event loop."""

    run_batch: Callable[[list[T]], list[R | Exception]]
    max_batch: int = 32
    max_wait_s: float = 0.002
    max_queue: int = 1024
    on_batch: Callable[[int, float], None] | None = None
    name: str = "model"
    gate: Gate | None = None
    heavy: bool = False
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

    @property
    def busy(self) -> bool:
        """A batch is running (in the worker thread)."""
        return self._busy

    async def submit(
        self, payload: T, timeout: float | None = None, disconnect: Callable[[], Awaitable[Any]] | None = None
    ) -> R:
        """Queue one request and wait for its own result or exception.

        Past `timeout` seconds, queued or running, it raises `TimeoutError` (a timer on the future, not
        `asyncio.wait_for`, which costs a task per request). `disconnect` is the ASGI `receive` of the
        request, its body read already: what it returns next is `http.disconnect`, and then this raises
        `ClientGone`. Either way the request is dropped from its queue, or its running batch told.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first call, or the app now runs on a new loop (test clients do this)
            self._reset(loop)
        if len(self._pending) >= self.max_queue:  # drop the ones whose callers gave up, then decide
            self._pending = deque(w for w in self._pending if not w.future.done())
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are already queued for model {self.name!r}")
        future: asyncio.Future[R] = loop.create_future()
        waiting = _Waiting(payload, future, loop.time())
        self._pending.append(waiting)
        self._schedule(loop)
        timer = None if timeout is None else loop.call_later(timeout, _expire, future, timeout)
        watch = None if disconnect is None else loop.create_task(_on_disconnect(disconnect, future))
        try:
            return await future
        finally:
            waiting.gone.set()  # answered, timed out, disconnected or cancelled: nobody waits for it now
            if timer is not None:
                timer.cancel()
            if watch is not None:
                watch.cancel()

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
        lane = HEAVY if self.heavy else LIGHT
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seer-{self.name}-{lane}")

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

    def _work(self, batch: list[_Waiting[T, R]]) -> list[R | Exception]:
        """In the worker thread: the batch, holding the model's gate, stoppable once all its callers are gone."""
        events = [w.gone for w in batch]
        hold = self.gate.hold(HEAVY if self.heavy else LIGHT) if self.gate else contextlib.nullcontext(None)
        with hold as pause, work_scope(lambda: all(e.is_set() for e in events), pause):
            return self.run_batch([w.payload for w in batch])

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting[T, R]]) -> None:
        try:
            start = loop.time()
            try:
                results = await loop.run_in_executor(self._executor, self._work, batch)
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


async def _on_disconnect(receive: Callable[[], Awaitable[Mapping[str, Any]]], future: asyncio.Future[Any]) -> None:
    """Fail `future` with `ClientGone` when the request's next ASGI message says its client went away."""
    message = await receive()
    if message.get("type") == "http.disconnect" and not future.done():
        future.set_exception(ClientGone("the client disconnected before its answer was ready"))
