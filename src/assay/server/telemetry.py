"""Prometheus exposition of the server's own counters, scoped per tenant.

Each scrape renders the series of one tenant (the key's) or of all tenants (a public
``/metrics``), so one tenant never sees another's model names.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Telemetry:
    """Counters of ingested events and batch latencies, keyed by tenant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self.batches: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.queue_depth = 0

    def count_events(self, tenant: str, model: str, kind: str, outcome: str, n: int) -> None:
        """Add ``n`` events of ``kind`` (predictions/labels) with ``outcome``."""
        with self._lock:
            self.events[(tenant, model, kind, outcome)] += n

    def count_batch(self, tenant: str, model: str, kind: str, status: int) -> None:
        """Count one batch request and its HTTP status."""
        with self._lock:
            self.batches[(tenant, model, kind, str(status))] += 1

    def observe_latency(self, tenant: str, kind: str, seconds: float) -> None:
        """Record one batch's latency."""
        with self._lock:
            counts = self.latency.setdefault((tenant, kind), [0.0] * (len(LATENCY_BUCKETS) + 2))
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            counts[-1] += seconds

    def render(self, tenant: str | None) -> bytes:
        """Exposition text of ``tenant``'s series (all tenants when ``None``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(self, tenant))
        return generate_latest(registry)


class _Snapshot:
    def __init__(self, telemetry: Telemetry, tenant: str | None):
        self.telemetry = telemetry
        self.tenant = tenant

    def _mine(self, tenant: str) -> bool:
        return self.tenant is None or tenant == self.tenant

    def collect(self) -> Iterator[Metric]:
        t = self.telemetry
        with t._lock:
            events = CounterMetricFamily(
                "assay_ingested_events", "Events received, by outcome",
                labels=["tenant", "model", "kind", "outcome"],
            )  # fmt: skip
            for key, value in t.events.items():
                if self._mine(key[0]):
                    events.add_metric(list(key), value)
            batches = CounterMetricFamily(
                "assay_ingest_batches", "Batch requests, by HTTP status",
                labels=["tenant", "model", "kind", "status"],
            )  # fmt: skip
            for key, value in t.batches.items():
                if self._mine(key[0]):
                    batches.add_metric(list(key), value)
            latency = HistogramMetricFamily(
                "assay_ingest_batch_seconds", "Batch latency until durable",
                labels=["tenant", "kind"],
            )  # fmt: skip
            for (tenant, kind), counts in t.latency.items():
                if not self._mine(tenant):
                    continue
                cumulative, running = [], 0.0
                for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
                    running += count
                    cumulative.append((str(bound), running))
                running += counts[len(LATENCY_BUCKETS)]
                cumulative.append(("+Inf", running))
                latency.add_metric([tenant, kind], cumulative, counts[-1])
            depth = GaugeMetricFamily("assay_write_queue_depth", "Batches waiting to be written")
            depth.add_metric([], t.queue_depth)
        yield from (events, batches, latency, depth)
