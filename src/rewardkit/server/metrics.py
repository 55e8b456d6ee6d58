"""Prometheus metrics of the reward service, on prometheus-client with one registry per app.

Counters and histograms keyed by a small, bounded set of label values (endpoint, status,
reward label, reason code). Each `Metrics` owns its `CollectorRegistry`, so two apps in one
process (tests, or a service that builds more than one) never share or collide on numbers;
nothing registers in prometheus-client's process-global registry.

The exposition is the text format 0.0.4 without the `*_created` series (timestamps of
creation, which Prometheus scrapes as extra gauge families and dashboards do not use).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rewardkit.errors import MissingDependencyError

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.metrics_core import Metric
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("prometheus-client", "server", "the reward service") from exc

__all__ = ["CONTENT_TYPE", "DEFAULT_BUCKETS", "Metrics"]

#: What `GET /metrics` answers with (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4"

#: Seconds; spans a cached rule reward (~1 ms) to a slow judge batch (~1 min).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class _WithoutCreated:
    """A view of a registry whose families leave out their `*_created` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = [s for s in family.samples if not s.name.endswith("_created")]
            if len(kept) != len(family.samples):
                family.samples = kept
            yield family


class Metrics:
    """Everything `GET /metrics` reports for one app, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, tuple(labels), registry=registry)

        def histogram(
            name: str, doc: str, labels: Iterable[str] = (), buckets: Any = DEFAULT_BUCKETS
        ) -> Histogram:
            return Histogram(name, doc, tuple(labels), registry=registry, buckets=buckets)

        self.requests = counter(
            "rewardkit_requests_total",
            "HTTP requests by endpoint and status.",
            ("endpoint", "status"),
        )
        self.latency = histogram(
            "rewardkit_request_duration_seconds", "Request latency by endpoint.", ("endpoint",)
        )
        self.samples = counter(
            "rewardkit_samples_total", "Samples scored, by endpoint.", ("endpoint",)
        )
        self.unscored = counter(
            "rewardkit_unscored_total", "Samples that got no reward, by endpoint.", ("endpoint",)
        )
        self.component_unscored = counter(
            "rewardkit_reward_unscored_total",
            "Unscored results of each reward in the spec, by reason code.",
            ("reward", "reason"),
        )
        self.judge_errors = counter(
            "rewardkit_judge_errors_total",
            "Judge rewards that could not score a sample (backend failure, unparseable verdict).",
            ("reward", "reason"),
        )
        self.batches = counter("rewardkit_batches_total", "Scorer calls made by the micro-batcher.")
        self.batch_size = histogram(
            "rewardkit_batch_samples",
            "Samples per Scorer call (requests merged by the micro-batcher).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        )
        self.batch_latency = histogram(
            "rewardkit_batch_duration_seconds", "Time of one Scorer call."
        )

    def render(self) -> str:
        """The exposition text of every metric of this app."""
        return generate_latest(_WithoutCreated(self.registry)).decode("utf-8")
