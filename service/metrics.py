"""Prometheus metrics for `GET /metrics`, in a registry of the app's own (tests build many apps).

Per request (recorded by `service.middleware`): `seer_requests_total` and
`seer_request_duration_seconds` by model, endpoint, method and status. No client can mint a label value:
the model is a served name (else "unknown"), the endpoint the route template (else "unmatched"), the
method one of HTTP's (else "other") and the status one this service answers with, so the number of
series is bounded by the routes and models, whatever the traffic. Per batch: `seer_batch_size` and
`seer_batch_duration_seconds` by model. Read at scrape time from the live objects, so they cannot drift
from them: `seer_queue_depth`, `seer_model_info` (the version each name serves, value 1), `seer_model_ready` and
`seer_model_load_failures_total`. Hot reload (`service.reload`): `seer_model_reloads_total` (versions
swapped in) and `seer_model_reload_failures_total` (new versions refused) by model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.store import READY, ModelStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


class _StateCollector(Collector):
    """Gauges read from the store and the batchers when Prometheus scrapes."""

    def __init__(self, store: ModelStore, depths: Callable[[], dict[str, int]]) -> None:
        self.store = store
        self.depths = depths

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("seer_queue_depth", "requests queued for a batch, per model", labels=["model"])
        for name, n in sorted(self.depths().items()):
            depth.add_metric([name], n)
        yield depth
        info = GaugeMetricFamily(
            "seer_model_info", "the model version each name serves (value 1)", labels=["model", "version", "alias"]
        )
        for m in self.store.models():
            info.add_metric([m.name, m.version, m.alias or ""], 1)
        yield info
        ready = GaugeMetricFamily("seer_model_ready", "1 when the model is loaded and warmed", labels=["model"])
        for name, status in sorted(self.store.status().items()):
            ready.add_metric([name], 1 if status == READY else 0)
        yield ready
        failures = CounterMetricFamily(
            "seer_model_load_failures", "model loads that failed in this process", labels=["model"]
        )
        for name, n in sorted(self.store.load_failures().items()):
            failures.add_metric([name], n)
        yield failures


class Metrics:
    """The app's metrics; `render()` is the `/metrics` body."""

    def __init__(self, store: ModelStore, depths: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "endpoint", "method"]
        self.requests = Counter("seer_requests", "HTTP requests answered", [*labels, "status"], registry=self.registry)
        self.latency = Histogram(
            "seer_request_duration_seconds",
            "time from request start to response end",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "seer_batch_size", "requests per forward pass", ["model"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_latency = Histogram(
            "seer_batch_duration_seconds",
            "one batch: forward pass and answers",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reloads = Counter(
            "seer_model_reloads", "new versions swapped in by hot reload", ["model"], registry=self.registry
        )
        self.reload_failures = Counter(
            "seer_model_reload_failures",
            "new versions refused by hot reload (failed to load or warm up); the old one kept serving",
            ["model"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, depths))

    def observe_request(self, model: str, endpoint: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"  # a client may send any token as a method
        self.requests.labels(model, endpoint, method, str(status)).inc()
        self.latency.labels(model, endpoint, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
