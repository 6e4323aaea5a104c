"""One model, two lanes: light and heavy requests take turns on the model (`Gate`, `BatcherPool`).

A model's requests are split by cost (`inference.predictor.request_cost`, SEER_HEAVY_COST): light ones
are micro-batched as before, heavy ones (a long horizon over many variates, say) run one at a time in a
lane of their own, each lane in its own thread. Both run the same model object, whose forward pass is not
safe to run from two threads at once (a module may keep per-call state), so they share a `Gate`: one
forward at a time. A holder checks the gate at each checkpoint (between layer calls, see
`inference.predictor.checkpoint`): when the other lane waits and the holder has had the model for its
slice, it hands over and waits for its next turn. Light work gets the longer slice, so a heavy request
costs a light one at most a heavy slice and a layer call of waiting (not its whole duration), while a
heavy request still gets a fifth of the model under a steady light load and finishes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from service.batcher import MicroBatcher

T = TypeVar("T")
R = TypeVar("R")
LIGHT, HEAVY = "light", "heavy"
# Seconds a holder keeps the model while the other lane waits: 4:1 for light work.
SLICE_S = {LIGHT: 0.040, HEAVY: 0.010}


class Gate:
    """One forward pass at a time per model, the two lanes taking turns (thread-safe)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._holder: str | None = None  # the lane holding the model, None when free
        self._last = HEAVY  # the lane that held it last: when both wait, the other goes
        self._since = 0.0  # when the holder took it
        self._waiting = {LIGHT: 0, HEAVY: 0}

    @contextlib.contextmanager
    def hold(self, lane: str) -> Iterator[Callable[[], None]]:
        """Hold the model for `lane`'s work; yields the `pause` to call at its checkpoints."""
        self._acquire(lane)
        try:
            yield lambda: self.pause(lane)
        finally:
            self._release()

    def pause(self, lane: str) -> None:
        """At a checkpoint of `lane`'s work: hand over if the other lane waits and this one's slice is used."""
        other = HEAVY if lane == LIGHT else LIGHT
        if not self._waiting[other]:  # a plain read: the common case takes no lock
            return
        if time.monotonic() - self._since < SLICE_S[lane]:
            return
        self._release()
        self._acquire(lane)

    def _acquire(self, lane: str) -> None:
        other = HEAVY if lane == LIGHT else LIGHT
        with self._cv:
            self._waiting[lane] += 1
            while self._holder is not None or (self._waiting[other] and self._last == lane):
                self._cv.wait()
            self._waiting[lane] -= 1
            self._holder, self._last, self._since = lane, lane, time.monotonic()

    def _release(self) -> None:
        with self._cv:
            self._holder = None
            self._cv.notify_all()


class BatcherPool(Generic[T, R]):
    """Per model name, a light lane's and a heavy lane's `MicroBatcher` (made on first use by
    `make(name, lane, gate)`), sharing the model's `Gate`."""

    def __init__(self, make: Callable[[str, str, Gate], MicroBatcher[T, R]]) -> None:
        self._make = make
        self._batchers: dict[tuple[str, str], MicroBatcher[T, R]] = {}
        self._gates: dict[str, Gate] = {}

    def get(self, name: str, lane: str = LIGHT) -> MicroBatcher[T, R]:
        batcher = self._batchers.get((name, lane))
        if batcher is None:
            gate = self._gates.setdefault(name, Gate())
            batcher = self._batchers[(name, lane)] = self._make(name, lane, gate)
        return batcher

    def depths(self) -> dict[str, int]:
        """Requests queued per model, both lanes."""
        out: dict[str, int] = {}
        for (name, _), b in self._batchers.items():
            out[name] = out.get(name, 0) + b.depth
        return out

    def close(self) -> None:
        for b in self._batchers.values():
            b.close()
