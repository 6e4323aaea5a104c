"""No overlap: per registered model a thread lock and a file lock; per process one training at a time.

The lock key is tracking URI + registered model, so a job never overlaps itself, nor another job on the
same model, nor a second `seer retrain` process on this machine (the file lock lives in
`$SEER_RETRAIN_LOCK_DIR`, default `<tmp>/seer-retrain`); the loser gives up at once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.retrain.jobs import RetrainJob

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()
_RUN_SLOT = threading.Lock()  # one training at a time per process: training uses every core anyway
RUNNING: set[str] = set()  # names of the jobs of this process that hold the run slot


def _lock_key(model: str, uri: str) -> str:
    digest = hashlib.sha1(f"{uri}\n{model}".encode()).hexdigest()[:12]
    return f"{model}-{digest}"


def lock_dir() -> Path:
    return Path(os.environ.get("SEER_RETRAIN_LOCK_DIR") or Path(tempfile.gettempdir()) / "seer-retrain")


@contextmanager
def job_lock(job: RetrainJob, uri: str) -> Iterator[bool]:
    """Yields True while this caller holds the lock of the job's registered model at `uri`, False (at
    once) if a run already holds it (in this process or another)."""
    from filelock import FileLock, Timeout

    key = _lock_key(job.registered_name, uri)
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if not tlock.acquire(blocking=False):
        yield False
        return
    try:
        directory = lock_dir()
        directory.mkdir(parents=True, exist_ok=True)
        flock = FileLock(str(directory / f"{key}.lock"), thread_local=False)
        try:
            flock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            flock.release()
    finally:
        tlock.release()


@contextmanager
def run_slot(job: str, cancel: threading.Event | None) -> Iterator[bool]:
    """Waits for this process's one training slot; yields False if `cancel` is set before it is free."""
    while not _RUN_SLOT.acquire(timeout=1.0):  # another job of this process is training
        if cancel is not None and cancel.is_set():
            yield False
            return
    try:
        RUNNING.add(job)
        yield True
    finally:
        RUNNING.discard(job)
        _RUN_SLOT.release()
