"""`rewardkit.integrations.ray`: the map_batches scorer in-process (every batch format, bad
rows, pickling, a hostile sample column) and on a local Ray instance (`rewardkit score --ray`
parity with `rewardkit score` and `Scorer.score`, resume, a mock judge on Ray actors)."""

from __future__ import annotations

import json
import logging
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardkit.cli.main import main
from rewardkit.errors import ConfigError, MissingDependencyError
from rewardkit.integrations.ray import SAMPLE_COLUMN, ScoreBatch, pack_sample, score_dataset
from rewardkit.io import iter_rows, sample_from_record
from rewardkit.scoring import Scorer
from rewardkit.types import Sample

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

#: think_format on every row, math only where task == math (workers: 1 keeps actors light).
#: docs/pipelines.md shows this file.
SPEC_YAML = """\
rewards:
  - reward: think_format
    weight: 0.5
  - reward: math
    args: {workers: 1}
    when: {task: math}
"""
SPEC: dict[str, Any] = yaml.safe_load(SPEC_YAML)
#: Rows of one Arrow schema: chat-message prompts throughout (Arrow cannot mix str and list).
ROWS: list[dict[str, Any]] = [
    {
        "id": "right",
        "prompt": [{"role": "user", "content": "2+2?"}],
        "response": "<think>t</think> \\boxed{4}",
        "reference": "4",
        "task": "math",
    },
    {
        "id": "wrong",
        "prompt": [{"role": "user", "content": "2+3?"}],
        "response": "\\boxed{6}",
        "reference": "5",
        "task": "math",
    },
    {
        "id": "noref",
        "prompt": [{"role": "user", "content": "3+3?"}],
        "response": "\\boxed{6}",
        "reference": None,
        "task": "math",
    },
    {
        "id": "chat",
        "prompt": [{"role": "user", "content": "hi"}],
        "response": "<think>x</think>hello",
        "reference": None,
        "task": "chat",
    },
    {
        "id": "noresp",
        "prompt": [{"role": "user", "content": "?"}],
        "response": None,
        "reference": "1",
        "task": "math",
    },
]


def _direct(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """What `Scorer.score` gives for the readable rows (the reference every path must match)."""
    samples = [
        sample_from_record(r, i + 1) for i, r in enumerate(rows) if r["response"] is not None
    ]
    with Scorer(SPEC) as scorer:
        return {
            str(s.id): rep.reward for s, rep in zip(samples, scorer.score(samples), strict=True)
        }


def _as_batch(kind: str, table: Any) -> Any:
    if kind == "pyarrow":
        return table
    if kind == "pandas":
        return table.to_pandas()
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def _column(kind: str, batch: Any, name: str) -> list[Any]:
    if kind == "pyarrow":
        return batch[name].to_pylist()
    if kind == "pandas":
        return [None if v is pd.NA else v for v in batch[name].tolist()]
    values = list(batch[name])
    if name == "reward":  # numpy has no null float: NaN marks the rows without a reward
        return [None if v != v else float(v) for v in values]
    return values


@pytest.fixture(scope="module")
def scorer_batch() -> ScoreBatch:
    batch = ScoreBatch(SPEC)
    yield batch
    batch.close()


@pytest.mark.parametrize("kind", ["pyarrow", "pandas", "numpy"])
def test_every_batch_format_gives_the_direct_rewards(kind: str, scorer_batch: ScoreBatch) -> None:
    out = scorer_batch(_as_batch(kind, pa.Table.from_pylist(ROWS)))
    ids = _column(kind, out, "id")
    rewards = dict(zip(ids, _column(kind, out, "reward"), strict=True))
    expected = _direct(ROWS)
    assert expected == {"right": 1.5, "wrong": 0.0, "noref": None, "chat": 0.5}
    assert {k: rewards[k] for k in expected} == expected
    reasons = dict(zip(ids, _column(kind, out, "reason"), strict=True))
    errors = dict(zip(ids, _column(kind, out, "error"), strict=True))
    details = dict(zip(ids, _column(kind, out, "details"), strict=True))
    # unscored is kept, with its reason code; an unreadable row is kept, with its error
    assert reasons["noref"] == "math: bad_reference" and errors["noref"] is None
    assert rewards["noresp"] is None and errors["noresp"] == "id 'noresp': missing field 'response'"
    assert json.loads(details["noresp"]) == {}
    assert json.loads(details["right"])["math"]["details"]["answer"] == "4"
    assert set(json.loads(details["chat"])) == {"think_format"}  # routed away from math
    assert reasons["right"] is None and errors["right"] is None


def test_the_scorer_class_pickles_as_its_spec(scorer_batch: ScoreBatch) -> None:
    scorer_batch(pa.Table.from_pylist(ROWS[:1]))  # its math pool has started
    state = scorer_batch.__getstate__()
    assert set(state) == {"spec", "prefix"}  # no pool, no session
    copy = pickle.loads(pickle.dumps(scorer_batch))
    try:
        got = copy(pa.Table.from_pylist(ROWS))["reward"].to_pylist()
    finally:
        copy.close()
    assert got[:4] == [1.5, 0.0, None, 0.5]


def test_a_column_clash_is_a_config_error_and_prefix_avoids_it() -> None:
    table = pa.Table.from_pylist([{"prompt": "p", "response": "<think>t</think>a", "reward": 9.0}])
    with pytest.raises(ConfigError, match="prefix="):
        ScoreBatch(SPEC)(table)
    out = ScoreBatch(SPEC, prefix="rk_")(table)
    assert out["reward"].to_pylist() == [9.0] and out["rk_reward"].to_pylist() == [0.5]


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.exit, ("pickle payload ran",))


def test_a_hostile_sample_column_is_data_never_unpickled(scorer_batch: ScoreBatch) -> None:
    # A dataset may carry the column rewardkit uses to ship samples: it is read as JSON,
    # so a pickle in it is an error row, and a JSON sample in it is just a sample.
    packed = pack_sample(
        Sample(
            prompt="p",
            response="<think>t</think> \\boxed{4}",
            reference="4",
            id="x",
            fields={"task": "math"},
        )
    )
    table = pa.Table.from_pylist(
        [
            {SAMPLE_COLUMN: pickle.dumps(_Boom())},
            {SAMPLE_COLUMN: "[1, 2]"},
            {SAMPLE_COLUMN: packed},
        ]
    )
    out = scorer_batch(table)
    assert out["reward"].to_pylist() == [None, None, 1.5]
    assert out["error"].to_pylist()[:2] == [
        f"row 1: {SAMPLE_COLUMN} is not a packed sample",
        f"row 2: {SAMPLE_COLUMN} is not a packed sample",
    ]


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'rewardkit\[ray\]'"):
        score_dataset(object(), SPEC)  # type: ignore[arg-type]


def test_score_ray_with_a_bad_spec_is_one_line_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "p", "response": "r"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(src), "-o", str(out), "--reward", "no_such_reward", "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_reward" in err[0]
    assert not out.exists()


# --- on a local Ray instance -----------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Any:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


#: JSONL as users write it: string and chat prompts mixed, a bad line, a repeated id, a row
#: without an id, one without a response, a 24-digit id.
LINES = [
    *(json.dumps(row) for row in ROWS),
    '{"id": 7, "prompt": "plain text prompt", "response": "<think>a</think> \\\\boxed{9}", "reference": "9", "task": "math"}',
    "not json",
    '{"id": "right", "prompt": "again", "response": "x"}',
    '{"prompt": "no id", "response": "<think>a</think>b"}',
    '{"id": 123456789012345678901234, "prompt": "q", "response": "\\\\boxed{5}", "reference": "4", "task": "math"}',
]


@pytest.mark.slow
def test_score_ray_writes_the_same_jsonl_as_score(
    ray_local: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rewardkit.integrations.ray as adapter

    windows: list[int] = []
    original = adapter.score_dataset

    def spy(ds: Any, *args: Any, **kwargs: Any) -> Any:
        windows.append(ds.count())
        return original(ds, *args, **kwargs)

    monkeypatch.setattr(adapter, "score_dataset", spy)
    src = tmp_path / "samples.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML, encoding="utf-8")
    local, on_ray = tmp_path / "scored_local.jsonl", tmp_path / "scored.jsonl"
    # exit status 1 on both: the run finished, and some lines hold an error (the bad rows)
    assert main(["score", str(src), "-o", str(local), "--spec", str(spec), "--no-progress"]) == 1
    assert (
        main(["score", str(src), "-o", str(on_ray), "--spec", str(spec), "--ray", "--no-progress"])
        == 1
    )
    assert on_ray.read_bytes() == local.read_bytes()  # same lines, same order, same bytes
    assert windows == [7]  # the 7 readable samples went to Ray, the 3 bad rows did not
    err = capsys.readouterr().err
    assert err.count("6 scored, 1 unscored, 3 errors, 0 already done") == 2
    # ... and both equal Scorer.score on the same samples
    lines = {line["id"]: line for line in map(json.loads, on_ray.read_text().splitlines())}
    readable = [r.record for r in iter_rows(src) if r.record is not None and "response" in r.record]
    direct = _direct(readable[:6])  # ROWS and id 7
    assert {k: lines[k]["reward"] for k in direct} == direct
    assert lines["noref"]["reason"] == "math: bad_reference"
    assert lines["@line7"]["error"] == "line 7: invalid JSON (Expecting value)"  # "7" is taken
    assert lines["right@line8"]["error"].startswith("line 8: duplicate id 'right'")
    assert lines["123456789012345678901234"]["reward"] == 0.0  # a 24-digit id kept exact
    # a rerun resumes: nothing is scored twice
    assert (
        main(["score", str(src), "-o", str(on_ray), "--spec", str(spec), "--ray", "--no-progress"])
        == 0
    )
    assert "0 scored, 0 unscored, 0 errors, 10 already done" in capsys.readouterr().err
    assert on_ray.read_bytes() == local.read_bytes()


def _judge(output: str, task: str) -> dict[str, Any]:
    args = {"backend": "mock", "outputs": [output], "samples": 1}
    return {"name": f"judge_{task}", "reward": "judge", "args": args, "when": {"task": task}}


@pytest.mark.slow
def test_a_mock_judge_scores_on_ray_actors_from_parquet(ray_local: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    ray = ray_local

    spec = {
        "rewards": [
            _judge("Critique: clear.\nScores: \\boxed{7}", "good"),
            _judge("no verdict here", "bad"),
        ]
    }
    rows = [
        {
            "id": f"s{i}",
            "prompt": f"question {i}",
            "response": f"answer {i}",
            "task": "good" if i % 3 else "bad",
        }
        for i in range(12)
    ]
    path = str(tmp_path / "completions.parquet")  # absolute: Ray reads in worker processes
    pq.write_table(pa.Table.from_pylist(rows), path)
    # the library form docs/pipelines.md shows (1 actor: 1 of 2 CPUs left for reading)
    ds = ray.data.read_parquet(path)
    scored = score_dataset(ds, spec, batch_size=4)
    got = {row["id"]: row for row in scored.take_all()}
    assert len(got) == 12  # nothing dropped
    for i, row in enumerate(rows):
        out = got[row["id"]]
        if row["task"] == "good":
            assert out["reward"] == 7.0 and json.loads(out["details"])["judge_good"]["details"][
                "critiques"
            ] == ["clear."]
        else:  # unscored, kept, with the reason code and the judge's raw text
            assert out["reward"] is None and out["reason"] == "judge_bad: no_valid_judgment"
            assert json.loads(out["details"])["judge_bad"]["raw"] == "no verdict here"
        assert out["error"] is None and out["prompt"] == f"question {i}"


OUTPUTS = [
    "<think>Sixteen minus three is thirteen.</think>The answer is \\boxed{13}.",
    "<think>Sixteen minus three is twelve.</think>The answer is \\boxed{12}.",
    "<think>Two times three is six.</think>\\boxed{6}",
    "no think, no box",
]


@pytest.mark.slow
def test_sample_ray_writes_what_sample_writes(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardkit.integrations.ray import RayScorer

    batches: list[list[str]] = []
    original = RayScorer.ascore

    async def spy(self: RayScorer, samples: Any) -> Any:
        batches.append([str(s.id) for s in samples])
        return await original(self, samples)

    monkeypatch.setattr(RayScorer, "ascore", spy)
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "a", "question": "Janet has 16 eggs and eats 3. How many are left?", "answer": "13"},
        {"id": "b", "question": "What is two times three?", "answer": "6"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def run(out: Path, *extra: str) -> int:
        return main(
            [
                "sample", str(prompts), "-o", str(out), "--reward", "math", "-n", "2",
                "--backend", "mock", "--policy-option", f"outputs={json.dumps(OUTPUTS)}",
                "--concurrency", "1", "--prompt-column", "question", "--reference-column", "answer",
                "--no-progress", "--bootstrap", "50", "--seed", "0", *extra,
            ]
        )  # fmt: skip

    assert run(tmp_path / "local") == 0
    assert run(tmp_path / "ray", "--ray") == 0
    assert batches == [["a#0", "a#1"], ["b#0", "b#1"]]  # one actor call per prompt
    for name in ("samples.jsonl", "sft.jsonl", "summary.json", "metrics.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), (
            name
        )
    samples = [
        json.loads(line) for line in (tmp_path / "ray" / "samples.jsonl").read_text().splitlines()
    ]
    assert [(s["id"], s["reward"]) for s in samples] == [
        ("a#0", 1.0),
        ("a#1", 0.0),
        ("b#0", 1.0),
        ("b#1", 0.0),
    ]
    assert [s["details"]["math"]["reason"] for s in samples] == [
        "correct",
        "wrong",
        "correct",
        "no_answer",
    ]


class _TaskError(Exception):
    """Shaped like ray.exceptions.RayTaskError: the actor's exception is `.cause`."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__("task failed")
        self.cause = cause


@pytest.mark.parametrize(
    ("raised", "surfaces"),
    [
        (_TaskError(ConfigError("math: workers must be a positive integer")), ConfigError),
        (_TaskError(_TaskError(MissingDependencyError("x", "y"))), MissingDependencyError),
        (_TaskError(RuntimeError("actor died")), _TaskError),  # not ours: shown as Ray gave it
        (_TaskError(None), _TaskError),
    ],
)
def test_a_setup_error_raised_in_an_actor_surfaces_as_itself(
    raised: BaseException, surfaces: type[BaseException]
) -> None:
    from rewardkit.integrations.ray import _inner

    assert type(_inner(raised)) is surfaces  # type: ignore[arg-type]


@pytest.mark.slow
def test_score_ray_joins_a_two_node_cluster_from_ray_address(tmp_path: Path) -> None:
    # Two Ray nodes (raylets) of one CPU each on this machine: the default two actors land
    # one per node, and the command joins the cluster RAY_ADDRESS names instead of starting one.
    import os
    import subprocess

    cluster_utils = pytest.importorskip("ray.cluster_utils")
    src = tmp_path / "samples.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(SPEC_YAML, encoding="utf-8")
    assert main(["score", str(src), "-o", str(tmp_path / "scored_local.jsonl"), "--spec", str(tmp_path / "spec.yaml"), "--no-progress"]) == 1  # fmt: skip
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        env = dict(os.environ, RAY_ADDRESS=cluster.address)
        command = "score samples.jsonl -o scored.jsonl --spec spec.yaml --ray --no-progress"
        done = subprocess.run(
            [sys.executable, "-m", "rewardkit.cli.main", *command.split()],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        # the command ran as a driver of this cluster (not a Ray of its own): its job is
        # in the cluster's job table, next to the one asking
        ask = "import ray; ray.init(); print(len(ray._private.state.jobs()))"
        jobs = subprocess.run(
            [sys.executable, "-c", ask], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        cluster.shutdown()
    assert jobs.stdout.strip() == "2", jobs.stderr
    assert done.returncode == 1, done.stderr  # 1: the bad rows' error lines
    assert "6 scored, 1 unscored, 3 errors" in done.stderr
    assert (tmp_path / "scored.jsonl").read_bytes() == (
        tmp_path / "scored_local.jsonl"
    ).read_bytes()


@pytest.mark.parametrize("command", ["score", "sample"])
def test_ray_flag_without_ray_is_one_line_naming_the_extra(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "q", "prompt": "p", "response": "r"}\n', encoding="utf-8")
    out = tmp_path / "out"
    extra = ["--backend", "mock", "--policy-option", "outputs=[a]"] if command == "sample" else []
    argv = [command, str(src), "-o", str(out), "--reward", "think_format", *extra, "--ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"rewardkit {command}: error: ray is required for scoring on Ray; "
        "install it with: pip install 'rewardkit[ray]'"
    ]
    assert not out.exists()
