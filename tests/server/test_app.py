"""The reward service over ASGI: both endpoints, auth, limits, errors, metrics, batching."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rewardkit.scoring import Scorer
from rewardkit.server import ServerConfig, create_app

CountingScorer = Scorer  # the conftest subclass, which records `.calls`
MakeScorer = Callable[..., Any]

CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


def client(scorer: CountingScorer, **config: Any) -> TestClient:
    return TestClient(create_app(scorer, ServerConfig(**config)))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition, 0 when absent.

    Parsed by prometheus-client's own parser: label order carries no meaning in the format
    (prometheus-client writes labels sorted by name).
    """
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_get_reward_openrlhf_shape_with_special_tokens(exact_scorer: CountingScorer) -> None:
    prompts = [CHATML.format(q="1+1?"), CHATML.format(q="2+2?"), "Plain prompt:"]
    queries = [
        prompts[0] + "2<|im_end|><|endoftext|>",  # right, with EOS and padding
        prompts[1] + "5<|im_end|>",  # wrong
        "<s>Plain prompt: 7</s>",  # BOS only in the query
    ]
    resp = client(exact_scorer).post(
        "/get_reward", json={"query": queries, "prompts": prompts, "labels": ["2", "4", "7"]}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert body["rewards"] == [1.0, 0.0, 1.0]
    assert body["scores"] == body["rewards"]
    assert body["extra_logs"]["rewardkit/unscored"] == [0.0, 0.0, 0.0]


def test_get_reward_fill_value_for_unscored(exact_scorer: CountingScorer) -> None:
    resp = client(exact_scorer, fill_value=-1.0).post(
        "/get_reward",
        json={
            "query": ["Q A", "Q B", "Q BOOM"],
            "prompts": ["Q", "Q", "Q"],
            "labels": ["A", None, "A"],
        },
    )
    body = resp.json()
    # One scored, one without a reference, one whose reward raised: the batch still answers.
    assert body["rewards"] == [1.0, -1.0, -1.0]
    assert body["extra_logs"]["rewardkit/unscored"] == [0.0, 1.0, 1.0]
    assert sum(body["extra_logs"]["rewardkit/unscored"]) == 2


def test_get_reward_without_prompts_uses_assistant_marker(exact_scorer: CountingScorer) -> None:
    query = CHATML.format(q="say hi") + "hi<|im_end|>"
    body = (
        client(exact_scorer).post("/get_reward", json={"query": [query], "labels": ["hi"]}).json()
    )
    assert body["rewards"] == [1.0]


def test_get_reward_datasources_route_spec(make_scorer: MakeScorer) -> None:
    spec = {
        "rewards": [
            {"reward": "server_test_exact", "name": "gsm", "when": {"data_source": "gsm8k"}},
            {"reward": "think_format", "name": "fmt", "when": {"data_source": "chat"}},
        ]
    }
    payload = {
        "query": ["Q 3", "Q <think>x</think> done", "Q z"],
        "prompts": ["Q", "Q", "Q"],
        "labels": ["3", None, None],
        "datasources": ["gsm8k", "chat", "other"],
    }
    body = client(make_scorer(spec)).post("/get_reward", json=payload).json()
    assert body["rewards"] == [1.0, 1.0, 0.0]
    assert body["extra_logs"]["rewardkit/unscored"] == [0.0, 0.0, 1.0]  # no reward applies
    assert body["extra_logs"]["rewardkit/gsm"] == [1.0, 0.0, 0.0]


def test_native_endpoint_single_and_group(exact_scorer: CountingScorer) -> None:
    resp = client(exact_scorer).post(
        "/v1/rewards",
        json={
            "samples": [
                {"id": "a", "prompt": "2+2?", "response": "4", "reference": "4", "task": "math"},
                {
                    "id": 7,
                    "prompt": [{"role": "user", "content": "1+1?"}],
                    "responses": ["2", "3", "BOOM"],
                    "reference": 2,
                },
                {"prompt": "no ref", "response": "x"},
            ]
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    first, group, third = body["results"]
    assert first["id"] == "a"
    assert first["reward"] == 1.0 and first["reason"] is None
    assert first["details"]["server_test_exact"] == {
        "score": 1.0,
        "reason": "checked",
        "weight": 1.0,
    }
    assert group["id"] == 7
    assert [r["reward"] for r in group["responses"]] == [1.0, 0.0, None]
    assert "error" in group["responses"][2]["reason"]
    assert "exploded" in group["responses"][2]["details"]["server_test_exact"]["message"]
    assert third["reward"] is None and "no_reference" in third["reason"]
    assert (body["scored"], body["unscored"]) == (3, 2)


def test_openapi_schema_lists_endpoints(exact_scorer: CountingScorer) -> None:
    schema = client(exact_scorer).get("/openapi.json").json()
    assert {"/get_reward", "/v1/rewards", "/health", "/metrics"} <= set(schema["paths"])
    assert "GetRewardRequest" in schema["components"]["schemas"]


def test_health(exact_scorer: CountingScorer) -> None:
    body = client(exact_scorer).get("/health").json()
    assert body["status"] == "ok"
    assert body["rewards"] == ["server_test_exact"]


TOKEN = "s3cret-token"
AUTH_CASES = [
    # (headers, path, expected status)
    ({}, "/get_reward", 401),
    ({"Authorization": "Bearer wrong"}, "/get_reward", 401),
    ({"Authorization": f"Basic {TOKEN}"}, "/get_reward", 401),
    ({"Authorization": f"Bearer {TOKEN}x"}, "/get_reward", 401),
    ({"Authorization": f"Bearer {TOKEN}"}, "/get_reward", 200),
    ({"Authorization": f"bearer {TOKEN}"}, "/get_reward", 200),
    ({}, "/metrics", 401),
    ({}, "/health", 200),
]


@pytest.mark.parametrize(("headers", "path", "status"), AUTH_CASES)
def test_token_auth(
    exact_scorer: CountingScorer, headers: dict[str, str], path: str, status: int
) -> None:
    c = client(exact_scorer, token=TOKEN)
    if path == "/get_reward":
        resp = c.post(
            path, json={"query": ["Q A"], "prompts": ["Q"], "labels": ["A"]}, headers=headers
        )
    else:
        resp = c.get(path, headers=headers)
    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"] == "unauthorized"
        assert resp.headers["www-authenticate"] == "Bearer"
        assert exact_scorer.calls == []  # rejected before any scoring


def test_body_size_limit(exact_scorer: CountingScorer) -> None:
    c = client(exact_scorer, max_body_bytes=1000)
    big = {"query": ["x" * 2000], "prompts": [""], "labels": [None]}
    resp = c.post("/get_reward", json=big)
    assert resp.status_code == 413
    assert resp.json()["error"] == "body_too_large"

    def chunks():  # no Content-Length: the limit must still hold
        for _ in range(20):
            yield b"x" * 100

    resp = c.post("/get_reward", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert exact_scorer.calls == []
    small = c.post("/get_reward", json={"query": ["Q A"], "prompts": ["Q"], "labels": ["A"]})
    assert small.status_code == 200


def test_batch_limit(exact_scorer: CountingScorer) -> None:
    c = client(exact_scorer, max_batch=3)
    resp = c.post("/get_reward", json={"query": ["a"] * 4})
    assert resp.status_code == 413
    assert "at most 3" in resp.json()["message"]
    group = {"samples": [{"response": "a"}, {"responses": ["a", "b", "c"]}]}  # 4 responses
    assert c.post("/v1/rewards", json=group).status_code == 413
    assert c.post("/get_reward", json={"query": ["a"] * 3}).status_code == 200
    assert exact_scorer.calls == [3]


BAD_BODIES = [
    # (endpoint, raw body, text expected in the message)
    ("/get_reward", b"{not json", "not valid JSON"),
    ("/get_reward", b"", "body is empty"),
    ("/get_reward", b"[1, 2]", "body"),
    ("/get_reward", b'{"query": "one string"}', "body.query"),
    (
        "/get_reward",
        b'{"query": ["a", "b"], "prompts": ["a"]}',
        "'prompts' has 1 items but 'query' has 2",
    ),
    ("/get_reward", b'{"query": ["a"], "labels": []}', "'labels' has 0 items"),
    ("/get_reward", b'{"query": ["a"], "surprise": 1}', "body.surprise"),
    ("/v1/rewards", b'{"samples": [{"prompt": "p"}]}', "exactly one of 'response'"),
    ("/v1/rewards", b'{"samples": [{"response": "a", "responses": ["b"]}]}', "exactly one of"),
    (
        "/v1/rewards",
        b'{"samples": [{"response": "a"}, {"response": 3}]}',
        "body.samples.1.response",
    ),
    ("/v1/rewards", b'{"samples": [{"responses": []}]}', "body.samples.0.responses"),
    ("/v1/rewards", b'{"sample": []}', "body.samples"),
    ("/v1/rewards", b"\xff\xfe\x00", "not valid JSON"),
]


@pytest.mark.parametrize(("path", "raw", "expected"), BAD_BODIES)
def test_bad_input_is_422_with_field(
    exact_scorer: CountingScorer, path: str, raw: bytes, expected: str
) -> None:
    resp = client(exact_scorer).post(
        path, content=raw, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert expected in body["message"]
    assert exact_scorer.calls == []


def test_non_json_content_type_hint(exact_scorer: CountingScorer) -> None:
    resp = client(exact_scorer).post("/v1/rewards", content=b"samples=1")
    assert resp.status_code == 422
    assert "Content-Type: application/json" in resp.json()["message"]


def test_metrics_counters_move(make_scorer: MakeScorer) -> None:
    spec = {
        "rewards": [
            {"reward": "server_test_exact", "name": "exact"},
            {"reward": "server_test_judge", "name": "grm"},
        ],
        "on_unscored": "skip",
    }
    c = client(make_scorer(spec))
    before = c.get("/metrics").text
    assert metric(before, "rewardkit_samples_total", endpoint="/get_reward") == 0
    c.post(
        "/get_reward", json={"query": ["Q A", "Q B"], "prompts": ["Q", "Q"], "labels": ["A", None]}
    )
    c.post("/v1/rewards", json={"samples": [{"response": "A", "reference": "A"}]})
    c.post("/get_reward", content=b"{", headers={"content-type": "application/json"})
    text = c.get("/metrics").text
    assert metric(text, "rewardkit_requests_total", endpoint="/get_reward", status="200") == 1
    assert metric(text, "rewardkit_requests_total", endpoint="/get_reward", status="422") == 1
    assert metric(text, "rewardkit_requests_total", endpoint="/v1/rewards", status="200") == 1
    assert metric(text, "rewardkit_samples_total", endpoint="/get_reward") == 2
    assert metric(text, "rewardkit_samples_total", endpoint="/v1/rewards") == 1
    # Sample 2 has no reference and the judge fails everywhere: with on_unscored=skip only it is unscored.
    assert metric(text, "rewardkit_unscored_total", endpoint="/get_reward") == 1
    assert (
        metric(text, "rewardkit_reward_unscored_total", reward="exact", reason="no_reference") == 1
    )
    assert metric(text, "rewardkit_judge_errors_total", reward="grm", reason="backend_error") == 3
    assert metric(text, "rewardkit_request_duration_seconds_count", endpoint="/get_reward") == 2
    assert metric(text, "rewardkit_batches_total") == 2
    assert "rewardkit_batch_samples_count 2" in text
    assert "rewardkit_batch_samples_sum 3" in text
    assert text.count("# TYPE") == 9


async def test_concurrent_requests_share_batches(make_scorer: MakeScorer) -> None:
    scorer = make_scorer()
    app = create_app(scorer, ServerConfig(batch_window_s=0.2, batch_max_samples=1000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

        async def one(i: int) -> list[float]:
            payload = {
                "query": [f"Q {i}", f"Q {i + 1}"],
                "prompts": ["Q", "Q"],
                "labels": [str(i), str(i)],
            }
            resp = await http.post("/get_reward", json=payload)
            return resp.json()["rewards"]

        results = await asyncio.gather(*(one(i) for i in range(8)))
    # Each request gets its own results back, in order, though scored together.
    assert results == [[1.0, 0.0]] * 8
    assert sum(scorer.calls) == 16
    assert len(scorer.calls) <= 2, scorer.calls  # 8 requests, one (rarely two) scoring calls


async def test_batches_bounded_by_max_samples(make_scorer: MakeScorer) -> None:
    scorer = make_scorer(delay=0.05)
    app = create_app(
        scorer, ServerConfig(batch_window_s=0.05, batch_max_samples=4, max_inflight_batches=1)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        payload = {
            "samples": [{"response": "a", "reference": "a"}, {"response": "b", "reference": "a"}]
        }
        bodies = await asyncio.gather(*(http.post("/v1/rewards", json=payload) for _ in range(6)))
    assert all(b.json()["scored"] == 2 for b in bodies)
    assert sum(scorer.calls) == 12
    assert max(scorer.calls) <= 4
    assert len(scorer.calls) == 3


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/get_reward", 405, "method_not_allowed"), ("POST", "/nope", 404, "not_found")],
)
def test_routing_errors_use_error_shape(
    exact_scorer: CountingScorer, method: str, path: str, status: int, code: str
) -> None:
    c = client(exact_scorer)
    resp = c.request(method, path)
    assert resp.status_code == status
    assert resp.json()["error"] == code
    endpoint = path if path == "/get_reward" else "other"  # unknown paths share one label
    assert (
        metric(
            c.get("/metrics").text,
            "rewardkit_requests_total",
            endpoint=endpoint,
            status=str(status),
        )
        == 1
    )
