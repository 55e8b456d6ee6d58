"""`JudgeReward`: the judge as a registered reward, through `rewardkit.scoring.Scorer`."""

from __future__ import annotations

import asyncio
import pickle
import threading
from pathlib import Path

import pytest
from judge_doubles import content_judge, keyword_score, shown_responses

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import BackendError, ConfigError
from rewardkit.judges import JudgeReward, Judgment, RemoteMetaRM, TransformersMetaRM
from rewardkit.registry import build_reward
from rewardkit.scoring import Scorer
from rewardkit.types import Sample, Score, Unscored

SAMPLES = [
    Sample("Explain tides.", "<think>The moon is good.</think>A bad answer.", id="1"),
    Sample("Explain tides.", "A good answer about the moon.", id="2"),
    Sample("Explain rain.", "An ok answer.", id="3"),
]


def _spec(backend: object, **args: object) -> dict[str, object]:
    return {"rewards": [{"reward": "judge", "args": {"backend": backend, **args}}]}


def test_registered_name_builds_the_judge() -> None:
    reward = build_reward("judge", backend=content_judge(keyword_score), samples=2)
    assert isinstance(reward, JudgeReward) and reward.config.samples == 2


@pytest.mark.parametrize("use_async", [False, True])
def test_pointwise_through_scorer(use_async: bool) -> None:
    backend = content_judge(keyword_score)
    with Scorer(_spec(backend, samples=2, reducer="mean")) as scorer:
        reports = asyncio.run(scorer.ascore(SAMPLES)) if use_async else scorer.score(SAMPLES)
    # Helpfulness judges the summary only: sample 1's flattering thinking does not count.
    assert [r.reward for r in reports] == [2.0, 9.0, 6.0]
    assert all(r.n == 2 for r in backend.requests)
    assert max(len(shown_responses(r)) for r in backend.requests) == 1
    details = reports[1].components["judge"]
    assert isinstance(details, Score)
    assert details.details["scores"] == [9, 9] and details.details["valid"] == 2
    assert details.details["principles"] and details.details["critiques"]


def test_listwise_groups_share_one_prompt() -> None:
    backend = content_judge(keyword_score)
    reward = JudgeReward(backend, samples=2, group_by_prompt=True, reducer="mean")
    results = reward.score_batch(SAMPLES)
    reward.close()
    assert [r.value for r in results if isinstance(r, Score)] == [2.0, 9.0, 6.0]
    sizes = sorted(len(shown_responses(r)) for r in backend.requests)
    assert sizes == [1, 2, 2]  # "tides" pair in two orders; "rain" alone


def test_listwise_groups_are_chunked() -> None:
    backend = content_judge(keyword_score)
    samples = [Sample("p", f"{w} {i}") for i, w in enumerate(["good", "bad", "ok"] * 3)]
    reward = JudgeReward(backend, group_by_prompt=True, max_responses=4, reducer="mean")
    results = reward.score_batch(samples)
    reward.close()
    assert [r.value for r in results if isinstance(r, Score)] == [9.0, 2.0, 6.0] * 3
    assert max(len(shown_responses(r)) for r in backend.requests) <= 4


@pytest.mark.parametrize(("vote", "expected"), [(1, 0.0), (10, 1.0), (7, 6 / 9)])
def test_normalize_maps_1_10_to_unit_interval(vote: int, expected: float) -> None:
    reward = JudgeReward(MockBackend([f"Scores: \\boxed{{{vote}}}"]), samples=3, normalize=True)
    [result] = reward.score_batch([Sample("p", "r")])
    reward.close()
    assert isinstance(result, Score) and result.value == pytest.approx(expected)
    assert result.details["vote"] == 3 * vote


def test_invalid_judgment_is_unscored_with_raw_text() -> None:
    reward = JudgeReward(MockBackend(["Scores: \\boxed{11}", "no idea"]), samples=2)
    [result] = reward.score_batch([Sample("p", "r")])
    reward.close()
    assert isinstance(result, Unscored)
    assert result.reason == "no_valid_judgment"
    assert "out_of_range" in result.message and "no_verdict" in result.message
    assert result.raw in {"Scores: \\boxed{11}", "no idea"}


def test_backend_failure_is_unscored() -> None:
    with Scorer(_spec(MockBackend([BackendError("HTTP 503 after 5 retries")]))) as scorer:
        [report] = scorer.score([Sample("p", "r")])
    assert report.reward is None
    result = report.components["judge"]
    assert isinstance(result, Unscored) and result.reason == "backend_error"
    assert "503" in result.message


def test_reference_mode_uses_sample_reference() -> None:
    def grade(request: GenerateRequest, index: int) -> str:
        prompt = request.messages[0]["content"]
        reference = prompt.split("#### Reference Answer ####\n")[1].split("\n")[0]
        shown = shown_responses(request)
        return "Scores: \\boxed{" + ", ".join("10" if reference in s else "1" for s in shown) + "}"

    reward = JudgeReward(MockBackend(grade), mode="reference")
    results = reward.score_batch(
        [
            Sample("2+2?", "<think>5?</think>It is 4", reference="4"),
            Sample("2+2?", "5", reference="4"),
            Sample("2+2?", "4"),
        ]
    )
    reward.close()
    assert isinstance(results[0], Score) and results[0].value == 10
    assert isinstance(results[1], Score) and results[1].value == 1
    assert isinstance(results[2], Unscored) and results[2].reason == "missing_reference"


def test_pickles_and_scores_in_a_thread_without_a_loop() -> None:
    reward = JudgeReward(MockBackend(["Scores: \\boxed{6}"]), samples=2)
    reward.score_batch([Sample("p", "warm up")])  # builds the judge and a loop thread
    clone = pickle.loads(pickle.dumps(reward))
    reward.close()
    assert clone._judge is None and clone._runner is None
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.extend(clone.score_batch([Sample("p", "r")])))
    worker.start()
    worker.join(timeout=30)
    clone.close()
    assert isinstance(out[0], Score) and out[0].value == 12.0


async def test_sync_score_batch_inside_a_running_loop() -> None:
    reward = JudgeReward(MockBackend(["Scores: \\boxed{5}"]))
    [result] = reward.score_batch([Sample("p", "r")])
    reward.close()
    assert isinstance(result, Score) and result.value == 5.0


def test_concurrent_sync_callers() -> None:
    reward = JudgeReward(content_judge(keyword_score), samples=2)
    out: dict[int, list[object]] = {}

    def call(i: int) -> None:
        out[i] = reward.score_batch([Sample("p", "good" if i % 2 else "bad")])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    reward.close()
    values = {i: r[0].value for i, r in out.items() if isinstance(r[0], Score)}
    assert values == {i: 18.0 if i % 2 else 4.0 for i in range(6)}


def test_close_closes_the_backend() -> None:
    backend = MockBackend(["Scores: \\boxed{5}"])
    reward = JudgeReward(backend)
    reward.score_batch([Sample("p", "r")])
    reward.close()
    assert backend.closed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sampels": 4}, "did you mean 'samples'"),
        ({"group_by_promt": True}, "group_by_prompt"),
        ({"samples": 0}, "samples"),
        ({"keep": 2}, "meta_rm"),
        ({"template": "{query} only"}, "{responses}"),
        ({"mode": "rubric"}, "principles"),
        ({"template_file": "/nonexistent/t.txt"}, "template_file"),
        ({"meta_rm": {"kind": "remote"}}, "meta_rm"),
        ({"meta_rm": {"kind": "oracle", "url": "x"}}, "kind"),
        ({"meta_rm": {"url": "http://127.0.0.1:1", "retries": 3}}, "meta_rm"),
    ],
)
def test_bad_options_fail_at_build_time(args: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        JudgeReward(MockBackend(["x"]), **args)


def test_template_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Rate: {query}\n{responses}\nAnswer {score_example}")
    backend = MockBackend(["Scores: \\boxed{3}"])
    reward = JudgeReward(backend, template_file=str(path))
    reward.score_batch([Sample("why?", "because")])
    reward.close()
    assert backend.requests[0].messages[0]["content"].startswith("Rate: why?")


def test_backend_options_are_passed_on() -> None:
    reward = JudgeReward("http", base_url="http://127.0.0.1:1/v1", model="m", concurrency=4)
    assert reward.backend_options == {
        "base_url": "http://127.0.0.1:1/v1",
        "model": "m",
        "concurrency": 4,
    }
    assert type(reward.backend).__name__ == "HTTPBackend" and reward.backend.model == "m"
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.backend.model == "m" and clone.backend_options == reward.backend_options


@pytest.mark.parametrize("transport", ["auto", "aiohttp"])
def test_transport_is_a_backend_option(transport: str) -> None:
    reward = JudgeReward("http", base_url="http://127.0.0.1:1/v1", model="m", transport=transport)
    assert reward.backend_options["transport"] == transport
    assert reward.backend.transport == transport
    assert pickle.loads(pickle.dumps(reward)).backend.transport == transport


@pytest.mark.parametrize(
    ("transport", "message"), [("grpc", "transport must be"), ("lean", "'lean' was removed")]
)
def test_a_bad_transport_is_a_config_error(transport: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JudgeReward("http", base_url="http://127.0.0.1:1/v1", model="m", transport=transport)


def test_pure_spec_with_the_mock_backend_kind() -> None:
    args = {"backend": "mock", "outputs": ["Scores: \\boxed{8}"], "samples": 2, "normalize": True}
    with Scorer({"rewards": [{"reward": "judge", "args": args}]}) as scorer:
        [report] = scorer.score([Sample("p", "r")])
    assert report.reward == pytest.approx(7 / 9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"backend": "mock", "outputs": ["x"], "delayy": 1}, "delay"),
        ({"backend": "http", "base_urll": "http://127.0.0.1:1"}, "base_url"),
        ({"backend": "grpc"}, "unknown backend"),
    ],
)
def test_backend_mistakes_fail_when_the_spec_loads(args: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scorer({"rewards": [{"reward": "judge", "args": args}]})


def test_meta_rm_specs_build_the_right_client() -> None:
    remote = JudgeReward(MockBackend(["x"]), meta_rm="http://127.0.0.1:1/score", samples=4, keep=2)
    assert isinstance(remote.meta_rm, RemoteMetaRM) and remote.meta_rm.url.endswith("/score")
    local = JudgeReward(MockBackend(["x"]), meta_rm={"model": "/models/meta", "batch_size": 4})
    assert isinstance(local.meta_rm, TransformersMetaRM) and local.meta_rm.batch_size == 4
    clone = pickle.loads(pickle.dumps(local))
    assert (
        isinstance(clone.meta_rm, TransformersMetaRM) and clone.meta_rm.model_name == "/models/meta"
    )


def test_meta_rm_filters_votes_through_the_reward() -> None:
    outputs = ["careful\nScores: \\boxed{9}", "Scores: \\boxed{1}"]

    class Careful:
        async def rate(self, query: object, judgments: list[Judgment]) -> list[float]:
            return [float("careful" in j.text) for j in judgments]

    reward = JudgeReward(MockBackend(outputs), samples=2, keep=1, meta_rm=Careful())
    [result] = reward.score_batch([Sample("p", "r")])
    reward.close()
    assert isinstance(result, Score) and result.value == 9.0
