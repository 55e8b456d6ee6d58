"""Prometheus text exposition for the reward service, in a few lines and no dependency.

Counters and histograms keyed by a small, bounded set of label values (endpoint, status,
reward label, reason code). prometheus-client would work too, but its process-global
registry makes two apps in one test process collide; this keeps each app's numbers its own.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

__all__ = ["DEFAULT_BUCKETS", "Counter", "Histogram", "Metrics"]

LabelValues = tuple[str, ...]

#: Seconds; spans a cached rule reward (~1 ms) to a slow judge batch (~1 min).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counter:
    """A monotonically increasing count per label combination."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def total(self) -> float:
        return sum(self._values.values())

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


class Histogram:
    """Cumulative buckets, sum and count per label combination."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(labels, ()))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        for key, counts, total in items:
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else _number(bound)
                bucket = 'le="' + le + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, bucket)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return lines


class Metrics:
    """Everything `GET /metrics` reports for one app."""

    def __init__(self) -> None:
        self.requests = Counter(
            "rewardkit_requests_total", "HTTP requests by endpoint and status.", ("endpoint", "status")
        )
        self.latency = Histogram(
            "rewardkit_request_duration_seconds", "Request latency by endpoint.", ("endpoint",)
        )
        self.samples = Counter(
            "rewardkit_samples_total", "Samples scored, by endpoint.", ("endpoint",)
        )
        self.unscored = Counter(
            "rewardkit_unscored_total",
            "Samples that got no reward, by endpoint.",
            ("endpoint",),
        )
        self.component_unscored = Counter(
            "rewardkit_reward_unscored_total",
            "Unscored results of each reward in the spec, by reason code.",
            ("reward", "reason"),
        )
        self.judge_errors = Counter(
            "rewardkit_judge_errors_total",
            "Judge rewards that could not score a sample (backend failure, unparseable verdict).",
            ("reward", "reason"),
        )
        self.batches = Counter("rewardkit_batches_total", "Scorer calls made by the micro-batcher.")
        self.batch_size = Histogram(
            "rewardkit_batch_samples",
            "Samples per Scorer call (requests merged by the micro-batcher).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        )
        self.batch_latency = Histogram(
            "rewardkit_batch_duration_seconds", "Time of one Scorer call."
        )

    def render(self) -> str:
        families: list[Counter | Histogram] = [
            self.requests,
            self.latency,
            self.samples,
            self.unscored,
            self.component_unscored,
            self.judge_errors,
            self.batches,
            self.batch_size,
            self.batch_latency,
        ]
        lines: list[str] = []
        for family in families:
            lines += family.render()
        return "\n".join(lines) + "\n"
