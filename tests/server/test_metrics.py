"""Metrics on prometheus-client: one registry per app, the global registry left alone."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from rewardkit.server.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render())
        for s in family.samples
    }


def test_two_apps_keep_their_own_numbers() -> None:
    a, b = Metrics(), Metrics()  # a second app in the same process must not collide
    a.requests.labels("/get_reward", "200").inc()
    a.requests.labels("/get_reward", "200").inc()
    b.requests.labels("/get_reward", "200").inc()
    key = ("rewardkit_requests_total", (("endpoint", "/get_reward"), ("status", "200")))
    assert samples(a)[key] == 2 and samples(b)[key] == 1
    # Nothing went to prometheus-client's process-global registry.
    assert not [m for m in REGISTRY.collect() if m.name.startswith("rewardkit_")]


def test_exposition_has_no_created_series_and_the_documented_families() -> None:
    metrics = Metrics()
    metrics.latency.labels("/v1/rewards").observe(0.003)
    metrics.batches.inc()
    text = metrics.render()
    assert "_created" not in text
    assert text.count("# TYPE") == 9
    got = samples(metrics)
    assert (
        got[
            (
                "rewardkit_request_duration_seconds_bucket",
                (("endpoint", "/v1/rewards"), ("le", "0.005")),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "rewardkit_request_duration_seconds_bucket",
                (("endpoint", "/v1/rewards"), ("le", "0.0025")),
            )
        ]
        == 0
    )
    assert got[("rewardkit_batches_total", ())] == 1
