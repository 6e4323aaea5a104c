"""Hot reload: a background task checks each served `NAME@ALIAS` ref and swaps in the version it points at.

Every `SEER_RELOAD_INTERVAL_S` seconds (0: never; `POST /admin/reload` checks at once) the alias is
resolved through the MLflow client. A new version is downloaded, rebuilt and warmed up on its stored
example input (shapes checked against its metadata, outputs finite) in a worker thread, off the request
path; only then does `ModelStore.add` replace the one reference requests read, so requests in flight
finish on the old version. A version that fails to build or warm up is refused: the old one keeps
serving, the refusal shows in `/readyz` (`reload.NAME.refused`) and in `seer_model_reload_failures_total`,
and it is not tried again until the alias moves. Each model is checked on its own: a registry answer
about one model (its alias deleted, its version's artifacts missing) is that model's `problem`, reported
for it alone and checked again next time, while the others are checked and swapped as usual. Only a
tracking server that does not answer at all is everyone's problem: serving goes on, the models after it
are skipped, and checks back off exponentially up to `SEER_RELOAD_BACKOFF_MAX_S`, logging once per change
of state. Local refs (`NAME=PATH`) are not watched.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from service.settings import ModelRef
from service.store import ModelStore
from service.tracking import ModelProblem, TrackingUnreachable, answered, fail_fast, why

log = logging.getLogger(__name__)


@dataclass
class Watch:
    """What the reloader knows about one watched ref."""

    ref: ModelRef
    refused: dict[str, str] | None = None  # {"version", "error"} until the alias moves elsewhere
    problem: str | None = None  # the registry's last answer about this model that kept it from a check
    last_check: str | None = None


class Reloader:
    """Watches the registry refs of `store`; `check()` once, or `run()` forever (the lifespan's task)."""

    def __init__(
        self,
        store: ModelStore,
        refs: list[ModelRef],
        interval_s: float,
        backoff_max_s: float = 300.0,
        on_swap: Callable[[str], None] | None = None,
        on_refuse: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.watches = {r.name: Watch(r) for r in refs if r.alias is not None}
        self.interval_s = interval_s
        self.backoff_max_s = max(backoff_max_s, interval_s)
        self.on_swap = on_swap or (lambda name: None)
        self.on_refuse = on_refuse or (lambda name: None)
        self.tracking = "ok"  # or "unreachable: <why>"
        self.failures = 0  # consecutive checks that could not reach the tracking server
        self._lock = threading.Lock()  # one check at a time (the poll loop and /admin/reload)
        self._executor: ThreadPoolExecutor | None = None  # made on first check, after a `close` too

    def next_delay(self) -> float:
        """The poll interval, doubled per consecutive unreachable check, capped."""
        return min(self.interval_s * 2.0 ** min(self.failures, 30), self.backoff_max_s)

    async def run(self) -> None:
        """Check every `next_delay()` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.next_delay())
            try:
                await self.check()
            except Exception:  # a bug here must not end hot reload for the process's lifetime
                log.exception("hot reload check failed")

    async def check(self) -> dict[str, dict[str, Any]]:
        """Check every watched ref now, in the reload thread; per model, what happened."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seer-reload")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.check_all)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def check_all(self) -> dict[str, dict[str, Any]]:
        """Blocking: check each watched ref in turn, each on its own; stops only at a tracking server that
        does not answer (the others would wait for it alike)."""
        with self._lock:
            report: dict[str, dict[str, Any]] = {}
            for name, watch in self.watches.items():
                current = self.store.get(name)
                served = current and current.version
                try:
                    report[name] = self._check(watch)
                    watch.problem = None
                except ModelProblem as e:  # this model's alone: the others are checked as usual
                    watch.problem = str(e)
                    log.warning("hot reload: %s keeps version %s: %s", name, served, e)
                    report[name] = {"action": "failed", "version": served, "error": str(e)}
                except TrackingUnreachable as e:
                    self._set_tracking(f"unreachable: {e}")
                    report[name] = {"action": "unreachable", "version": served, "error": str(e)}
                    for other in self.watches:  # one tracking server: the others would fail alike
                        report.setdefault(other, {"action": "skipped", "error": "tracking server unreachable"})
                    self.failures += 1
                    return report
            self.failures = 0
            self._set_tracking("ok")
            return report

    def _check(self, watch: Watch) -> dict[str, Any]:
        ref, name = watch.ref, watch.ref.name
        watch.last_check = datetime.now(timezone.utc).isoformat(timespec="seconds")
        current = self.store.get(name)
        try:
            with fail_fast():
                version = self.store.resolve(ref)
        except Exception as e:
            if answered(e):
                raise ModelProblem(f"cannot resolve {ref}: {why(e)}") from e
            raise TrackingUnreachable(f"cannot resolve {ref}: {why(e)}") from e
        if watch.refused is not None and watch.refused["version"] != version:
            watch.refused = None  # the alias moved: whatever it points at now gets its own chance
        if current is not None and current.version == version:
            return {"action": "unchanged", "version": version}
        if watch.refused is not None:
            return {"action": "refused earlier", "version": current and current.version, "refused": watch.refused}
        with tempfile.TemporaryDirectory(prefix="seer-reload-") as tmp:
            try:
                with fail_fast():
                    local = self.store.download(ref, version, tmp)
            except Exception as e:  # the server just answered the alias: the version's artifacts are at fault
                raise ModelProblem(f"cannot download {name} version {version}: {why(e)}") from e
            try:
                candidate = self.store.build(ref, version, local)  # rebuilt + warmed up: validated
            except Exception as e:
                watch.refused = {"version": version, "error": why(e)}
                self.on_refuse(name)
                old = current and current.version
                log.error("refused %s version %s (%s); version %s keeps serving: %s", name, version, ref, old, e)
                return {"action": "refused", "version": old, "refused": watch.refused}
        self.store.add(candidate)  # the swap: one reference replaced
        self.on_swap(name)
        old = current and current.version
        log.info("hot reload: %s now serves version %s (was %s), from %s", name, version, old, ref)
        return {"action": "swapped", "version": version, "previous": old}

    def _set_tracking(self, state: str) -> None:
        """Log only when the tracking server's state changes, not on every failed poll."""
        if state.startswith("unreachable") and not self.tracking.startswith("unreachable"):
            uri = self.store.tracking_uri
            log.warning("tracking server %s (%s); serving goes on, retrying with backoff", state, uri)
        elif state == "ok" and self.tracking != "ok":
            log.info("tracking server reachable again (%s)", self.store.tracking_uri)
        self.tracking = state

    def details(self) -> dict[str, dict[str, Any]]:
        """Per watched model, for `/readyz`: version served, status, tracking state, refusal if any."""
        status = self.store.status()
        out: dict[str, dict[str, Any]] = {}
        for name, watch in self.watches.items():
            current = self.store.get(name)
            entry: dict[str, Any] = {
                "version": current and current.version,
                "alias": watch.ref.alias,
                "status": status.get(name),
                "tracking": self.tracking,
                "last_check": watch.last_check,
            }
            if watch.refused is not None:
                entry["refused"] = dict(watch.refused)
            if watch.problem is not None:
                entry["problem"] = watch.problem
            out[name] = entry
        return out
