"""Meta RM: the training record format, a tiny local classifier, and the HTTP client."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rewardkit.backends import HTTPRequest, HTTPResponse, MockTransport
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import BackendError, BackendHTTPError, InputError
from rewardkit.judges import (
    JudgeConfig,
    JudgeQuery,
    MetaRMRecord,
    PointwiseJudge,
    RemoteMetaRM,
    TransformersMetaRM,
    format_meta_input,
    read_meta_records,
    records_from_result,
    write_meta_records,
)
from rewardkit.judges.data import Judgment
from rewardkit.judges.meta_rm import meta_inputs


def _judgment(order: tuple[int, ...], scores: tuple[int, ...] | None, text: str = "t") -> Judgment:
    return Judgment(text, None, None, None, order, scores, None if scores else "no_verdict")


def test_format_meta_input_shows_responses_in_judged_order() -> None:
    query = JudgeQuery("Q?", ("first", "second"))
    [text] = meta_inputs(query, [_judgment((1, 0), (3, 8), "verdict text")])
    assert text == format_meta_input("Q?", ["second", "first"], "verdict text")
    assert text.index("second") < text.index("first") < text.index("verdict text")


async def test_records_from_result_label_agreement() -> None:
    outputs = ["Scores: \\boxed{8, 3}", "Scores: \\boxed{5, 5}", "Scores: \\boxed{2, 9}", "junk"]
    judge = PointwiseJudge(MockBackend(outputs), JudgeConfig(samples=4, shuffle=False))
    query = JudgeQuery("Q?", ("right", "wrong"), id="7")
    result = await judge.judge(query)
    records = records_from_result(query, result, preferred=0, source="unit")
    assert [r.label for r in records] == [1, 0, 0]  # a tie is not agreement; junk skipped
    assert records[0].responses == ["right", "wrong"] and records[0].id == "7"
    assert records[0].text() == format_meta_input("Q?", ["right", "wrong"], outputs[0])


def test_records_round_trip_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    records = [
        MetaRMRecord(query="q", responses=["a", "b"], judgment="Scores: \\boxed{1, 2}", label=1),
        MetaRMRecord(query="q2", responses=["c"], judgment="j", label=0, id="x", source="s"),
    ]
    assert write_meta_records(path, records) == 2
    assert list(read_meta_records(path)) == records


@pytest.mark.parametrize(
    "line",
    [
        '{"query": "q", "responses": ["a"], "judgment": "j", "label": 2}',
        '{"query": "q", "responses": [], "judgment": "j", "label": 1}',
        '{"query": "q", "responses": ["a"], "judgment": "j", "label": 1, "extra": 1}',
        "not json",
    ],
)
def test_bad_record_names_the_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = '{"query": "q", "responses": ["a"], "judgment": "j", "label": 1}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2"):
        list(read_meta_records(path))


def test_missing_record_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        list(read_meta_records(tmp_path / "nope.jsonl"))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-label BERT with a word-level tokenizer, built in code, saved to disk."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "query",
        "response",
        "judgment",
        "scores",
        "good",
        "bad",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    folder = tmp_path_factory.mktemp("meta_rm")
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.mark.slow  # imports transformers (seconds on a busy machine)
async def test_transformers_meta_rm_rates_each_judgment(tiny_classifier: Path) -> None:
    meta = TransformersMetaRM(str(tiny_classifier), batch_size=2, max_length=64)
    query = JudgeQuery("query", ("good response", "bad response"))
    judgments = [
        _judgment((0, 1), (8, 2), "good"),
        _judgment((1, 0), (2, 8), "bad bad"),
        _judgment((0, 1), (5, 5), "scores"),
    ]
    ratings = await meta.rate(query, judgments)
    assert len(ratings) == 3 and len(set(ratings)) == 3  # distinct inputs, distinct ratings
    # Batching does not change a rating.
    alone = await meta.rate(query, judgments[1:2])
    assert alone[0] == pytest.approx(ratings[1], abs=1e-5)
    # Concurrent queries share one model safely.
    fresh = TransformersMetaRM(str(tiny_classifier))
    together = await asyncio.gather(*(fresh.rate(query, judgments) for _ in range(4)))
    assert all(r == pytest.approx(ratings, abs=1e-5) for r in together)
    # It unpickles without the weights and reloads them lazily.
    clone = pickle.loads(pickle.dumps(meta))
    assert clone._model is None
    assert await clone.rate(query, judgments) == pytest.approx(ratings, abs=1e-5)


@pytest.mark.slow  # imports transformers (seconds on a busy machine)
async def test_transformers_meta_rm_guides_the_vote(tiny_classifier: Path) -> None:
    meta = TransformersMetaRM(str(tiny_classifier))
    outputs = ["good\nScores: \\boxed{9}", "bad\nScores: \\boxed{1}", "scores\nScores: \\boxed{5}"]
    judge = PointwiseJudge(MockBackend(outputs), JudgeConfig(samples=3, keep=1), meta_rm=meta)
    result = await judge.judge(JudgeQuery("query", ("response",)))
    ratings = [j.meta_score for j in result.judgments]
    assert all(r is not None for r in ratings)
    best = max(range(3), key=lambda i: ratings[i] or 0.0)
    assert result.voters == (best,)
    assert result.rewards == (float([9, 1, 5][best]),)


@pytest.fixture
async def meta_server() -> AsyncIterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    async def score(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body)
        return web.json_response({"scores": [float(len(t)) for t in body["inputs"]]})

    app = web.Application()
    app.router.add_post("/score", score)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/score", received
    await runner.cleanup()


async def test_remote_meta_rm(meta_server: tuple[str, list[Any]]) -> None:
    url, received = meta_server
    meta = RemoteMetaRM(url, timeout=5)
    query = JudgeQuery("q", ("r",))
    judgments = [_judgment((0,), (3,), "short"), _judgment((0,), (9,), "a much longer judgment")]
    ratings = await meta.rate(query, judgments)
    assert received[0] == {"inputs": meta_inputs(query, judgments)}
    assert ratings == [float(len(t)) for t in meta_inputs(query, judgments)]
    assert ratings[1] > ratings[0]
    await meta.aclose()
    assert pickle.loads(pickle.dumps(meta)).url == url


def _scripted_meta(answer: HTTPResponse, seen: list[HTTPRequest] | None = None) -> RemoteMetaRM:
    def handler(request: HTTPRequest) -> HTTPResponse:
        if seen is not None:
            seen.append(request)
        return answer

    return RemoteMetaRM(
        "http://meta.test/score",
        timeout=5,
        transport=MockTransport(handler, max_response_bytes=4096),
    )


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (HTTPResponse(500, b"boom"), BackendHTTPError, "boom"),
        (HTTPResponse.from_json({"scores": [1.0]}), BackendError, "1 scores for 2 inputs"),
        (HTTPResponse.from_json({"nope": 1}), BackendError, "without a 'scores' list"),
        (HTTPResponse.from_json({"scores": ["high", "low"]}), BackendError, "'scores' list"),
        (HTTPResponse(200, b"<html>"), BackendError, "'scores' list"),
        # a hostile or broken meta RM answering megabytes is cut off at the cap
        (HTTPResponse.from_json({"scores": [0.0] * 2000}), BackendError, "max_response_bytes=4096"),
    ],
)
async def test_remote_meta_rm_errors(
    answer: HTTPResponse, error: type[Exception], message: str
) -> None:
    meta = _scripted_meta(answer)
    judgments = [_judgment((0,), (3,), "a"), _judgment((0,), (4,), "x")]
    with pytest.raises(error, match=message):
        await meta.rate(JudgeQuery("q", ("r",)), judgments)
    await meta.aclose()


async def test_remote_meta_rm_request_through_the_transport() -> None:
    seen: list[HTTPRequest] = []
    meta = _scripted_meta(HTTPResponse.from_json({"scores": [0.5, 2]}), seen)
    meta.headers["Authorization"] = "Bearer k"
    query = JudgeQuery("q", ("r",))
    judgments = [_judgment((0,), (3,), "a"), _judgment((0,), (4,), "b")]
    assert await meta.rate(query, judgments) == [0.5, 2.0]
    [request] = seen
    assert (request.method, request.url, request.timeout) == ("POST", "http://meta.test/score", 5)
    assert request.headers["Authorization"] == "Bearer k"
    assert request.json() == {"inputs": meta_inputs(query, judgments)}


def test_remote_meta_rm_needs_an_http_url() -> None:
    from rewardkit.errors import ConfigError

    with pytest.raises(ConfigError, match="http"):
        RemoteMetaRM("meta.test/score")


async def test_remote_meta_rm_unreachable_falls_back_in_the_judge() -> None:
    meta = RemoteMetaRM("http://127.0.0.1:9/score", timeout=2)
    judge = PointwiseJudge(
        MockBackend(["Scores: \\boxed{4}"]), JudgeConfig(samples=2, keep=1), meta_rm=meta
    )
    result = await judge.judge(JudgeQuery("q", ("r",)))
    assert result.rewards == (8.0,)
    assert any(w.startswith("meta_rm_failed") for w in result.warnings)
    await meta.aclose()


def test_meta_record_json_schema_is_documented() -> None:
    schema = MetaRMRecord.model_json_schema()
    assert set(schema["required"]) == {"query", "responses", "judgment", "label"}
    assert all("description" in p for p in schema["properties"].values())
    assert (
        json.loads(
            MetaRMRecord(query="q", responses=["a"], judgment="j", label=1).model_dump_json()
        )["label"]
        == 1
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, type(None)),
        ("http://127.0.0.1:9/rate", "RemoteMetaRM"),
        ({"url": "https://meta.example/rate"}, "RemoteMetaRM"),
        ("/models/meta-rm", "TransformersMetaRM"),
        ({"kind": "transformers", "model": "/models/meta-rm"}, "TransformersMetaRM"),
    ],
)
def test_one_meta_rm_builder_for_the_reward_and_the_cli(spec: Any, expected: Any) -> None:
    from rewardkit.judges.meta_rm import build_meta_rm

    built = build_meta_rm(spec)  # nothing is loaded or contacted until first use
    name = expected if isinstance(expected, str) else expected.__name__
    assert type(built).__name__ == name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "remote"}, "bad meta_rm options"),
        ({"kind": "magic", "url": "x"}, "must be 'remote' or 'transformers'"),
    ],
)
def test_meta_rm_builder_names_what_to_fix(spec: dict[str, Any], message: str) -> None:
    from rewardkit.errors import ConfigError
    from rewardkit.judges.meta_rm import build_meta_rm

    with pytest.raises(ConfigError, match=message):
        build_meta_rm(spec)
