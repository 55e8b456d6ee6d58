"""The whole pass: spec routing over an HTTP policy, resume after a kill, errors kept, settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardkit.backends import MockBackend
from rewardkit.backends.base import GenerateRequest
from rewardkit.cli.main import main
from rewardkit.errors import BackendTimeoutError, ConfigError
from rewardkit.pipelines.sample import SampleRunConfig, run_sample_sync
from rewardkit.testing.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def write_prompts(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path: Path, prompts: Path, **overrides: Any) -> SampleRunConfig:
    data: dict[str, Any] = {
        "prompts": prompts,
        "output": tmp_path / "out",
        "spec": {"rewards": [{"reward": "think_format"}]},
        "policy": {"backend": "mock"},
        "sampling": {"n": 2, "seed": 7},
        "out": {"progress": False, "bootstrap": 0},
    }
    data.update(overrides)
    return SampleRunConfig.model_validate(data)


def raw_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_routing_spec_with_an_http_policy_and_judges(tmp_path: Path) -> None:
    """examples/sample/routing.yaml: rules where checkable, judges elsewhere, one server."""

    asked: dict[str, int] = {}

    def reply(body: dict[str, Any], index: int) -> str:
        if body["model"] == "judge":
            return "Scores: \\boxed{9}"
        question = body["messages"][-1]["content"]
        asked[question] = asked.get(question, 0) + 1
        answer = {"2+2?": "\\boxed{4}", "Capital of France?": "Paris"}.get(question, "A poem.")
        if asked[question] == 1:  # each prompt: one good sample, then one wrong one
            return f"<think>Let me think about it.</think>{answer}"
        return "<think>Hmm.</think>\\boxed{5}"

    rows = [
        {
            "id": "m",
            "prompt": "2+2?",
            "reference": "4",
            "answer_type": "numeric",
            "data_source": "arith",
        },
        {
            "id": "f",
            "prompt": "Capital of France?",
            "reference": "Paris",
            "answer_type": "free_form",
        },
        {"id": "o", "prompt": "Write a poem.", "answer_type": "open"},
    ]
    prompts = write_prompts(tmp_path / "p.jsonl", rows)
    spec = yaml.safe_load((ROOT / "examples" / "sample" / "routing.yaml").read_text())
    with FakeOpenAI(reply=reply, ignore_n=True).run_in_thread() as server:
        for entry in spec["rewards"]:
            if "base_url" in entry.get("args", {}):
                entry["args"]["base_url"] = server.base_url
        cfg = config(
            tmp_path,
            prompts,
            spec=spec,
            policy={"backend": "http", "model": "policy", "base_url": [server.base_url]},
            keep={"policy": "above", "min_reward": 0.8},
        )
        result = run_sample_sync(cfg)
        # The server answers one choice per request: the backend topped n=2 up.
        policy_bodies = [b for b in server.bodies if b["model"] == "policy"]
    assert len(policy_bodies) == 6
    lines = {line["id"]: line for line in raw_lines(tmp_path / "out")}
    assert set(lines) == {"m#0", "m#1", "f#0", "f#1", "o#0", "o#1"}
    assert list(lines["m#0"]["details"]) == ["math"] and lines["m#0"]["answer"] == "4"
    assert list(lines["f#0"]["details"]) == ["reference_judge"]
    assert list(lines["o#0"]["details"]) == ["open_judge"]
    assert sorted(lines[f"m#{i}"]["reward"] for i in range(2)) == [0.0, 1.0]
    kept = [json.loads(line)["id"] for line in result.sft_path.read_text().splitlines()]
    # the wrong math sample goes; the judge's 9/10 passes min_reward 0.8 for the rest
    assert len(kept) == 5 and {k[0] for k in kept} == {"m", "f", "o"}
    assert result.summary["rejected"]["below_min_reward"] == 1
    assert result.metrics["arith"]["pass@1"]["value"] == 0.5


def test_seeds_differ_per_prompt_and_are_stable(tmp_path: Path) -> None:
    prompts = write_prompts(
        tmp_path / "p.jsonl", [{"id": str(i), "prompt": f"q{i}"} for i in range(3)]
    )
    seen: list[int | None] = []
    for run in range(2):
        backend = MockBackend(["<think>x</think>y"])
        run_sample_sync(config(tmp_path / str(run), prompts), backend=backend)
        seen.append(tuple(r.seed for r in backend.requests))  # type: ignore[arg-type]
    assert seen[0] == seen[1] and len(set(seen[0])) == 3  # type: ignore[arg-type]


def test_generation_errors_are_kept_then_retried(tmp_path: Path) -> None:
    prompts = write_prompts(
        tmp_path / "p.jsonl", [{"id": "a", "prompt": "qa"}, {"id": "b", "prompt": "qb"}]
    )

    def flaky(request: GenerateRequest, index: int) -> str:
        if request.messages[-1]["content"] == "qb":
            raise BackendTimeoutError("policy took too long")
        return "<think>x</think>y"

    result = run_sample_sync(
        config(tmp_path, prompts, out={"progress": False, "bootstrap": 0}),
        backend=MockBackend(flaky),
    )
    assert result.failed == 2 and result.summary["rejected"]["error"] == 2
    assert "BackendTimeoutError: policy took too long" in result.summary["generation_errors"]
    assert result.metrics["all"]["failed_samples"] == 2
    backend = MockBackend(["<think>x</think>z"])
    again = run_sample_sync(config(tmp_path, prompts), backend=backend)
    assert [r.messages[-1]["content"] for r in backend.requests] == ["qb"]  # only b asked again
    assert again.failed == 0 and again.summary["rejected"]["error"] == 0
    assert sorted(line["id"] for line in raw_lines(tmp_path / "out")) == [
        "a#0",
        "a#1",
        "b#0",
        "b#1",
    ]


def test_more_samples_later_draws_only_the_new_indices(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", [{"id": "a", "prompt": "qa"}])
    run_sample_sync(config(tmp_path, prompts), backend=MockBackend(["<think>x</think>y"]))
    backend = MockBackend(["<think>x</think>y"])
    result = run_sample_sync(
        config(tmp_path, prompts, sampling={"n": 5, "seed": 7}), backend=backend
    )
    assert [r.n for r in backend.requests] == [3] and result.summary["samples"] == 5


def test_changed_sampling_settings_refuse_the_folder(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", [{"id": "a", "prompt": "qa"}])
    run_sample_sync(config(tmp_path, prompts), backend=MockBackend(["<think>x</think>y"]))
    with pytest.raises(ConfigError, match="changed: sampling"):
        run_sample_sync(
            config(tmp_path, prompts, sampling={"n": 2, "seed": 8}), backend=MockBackend(["y"])
        )


def test_bad_prompt_rows_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "qa"}\nnot json\n{"id": "a", "prompt": "again"}\n{"id": "c"}\n'
    )
    result = run_sample_sync(config(tmp_path, path), backend=MockBackend(["<think>x</think>y"]))
    errors = [p["error"] for p in result.input_errors]
    assert len(errors) == 3
    assert (
        "invalid JSON" in errors[0]
        and "duplicate id 'a'" in errors[1]
        and "no 'prompt'" in errors[2]
    )
    assert result.summary["input_errors"] == result.input_errors and result.summary["samples"] == 2


def test_a_prompt_without_an_id_never_takes_a_real_id(tmp_path: Path) -> None:
    # Line 1 has no id and line 2 has id 1: both are sampled (before, line 2 was reported
    # as a duplicate of line 1), and a rerun draws nothing new.
    path = write_prompts(tmp_path / "p.jsonl", [{"prompt": "qa"}, {"id": 1, "prompt": "qb"}])
    result = run_sample_sync(config(tmp_path, path), backend=MockBackend(["<think>x</think>y"]))
    assert result.input_errors == []
    prompt_ids = {line["prompt_id"] for line in raw_lines(tmp_path / "out")}
    assert prompt_ids == {"@line1", "1"} and len(raw_lines(tmp_path / "out")) == 4
    backend = MockBackend(["y"])
    run_sample_sync(config(tmp_path, path), backend=backend)
    assert backend.requests == []


def test_resume_after_kill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real `rewardkit sample` process killed mid-run; the rerun finishes without repeats."""
    prompts = write_prompts(
        tmp_path / "p.jsonl", [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(8)]
    )
    out = tmp_path / "out"
    args = [
        "sample", str(prompts), "-o", str(out), "--reward", "think_format", "-n", "2",
        "--backend", "mock", "--concurrency", "1", "--no-progress",
        "--policy-option", 'outputs=["<think>a</think>b", "<think>c</think>d"]',
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    slow = ["--policy-option", "delay=0.4"]  # time to kill it mid-run
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit.cli.main", *args, *slow], env=env)
    raw = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not raw.exists() or raw.read_bytes().count(b"\n") < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = raw.read_bytes().count(b"\n")
    assert 4 <= before < 16, "the kill came too late to test resuming"
    with raw.open("ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"id": "q7#0", "prompt_id": "q7", "ind')
    assert main(args) == 0
    assert f"rewardkit sample: {16 - before} drawn, 0 failed" in capsys.readouterr().err
    ids = [line["id"] for line in raw_lines(out)]
    assert sorted(ids) == sorted(f"q{i}#{j}" for i in range(8) for j in range(2))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 16 and summary["kept"] == 16


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    prompts = write_prompts(
        tmp_path / "p.jsonl", [{"id": str(i), "prompt": f"q{i}"} for i in range(12)]
    )
    live = peak = 0

    class Counting(MockBackend):
        async def generate(self, request: GenerateRequest) -> list[Any]:
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            await asyncio.sleep(0.01)
            live -= 1
            return await super().generate(request)

    cfg = config(tmp_path, prompts, policy={"backend": "mock", "concurrency": 3})
    run_sample_sync(cfg, backend=Counting(["<think>x</think>y"]))
    assert peak == 3


@pytest.mark.parametrize(
    "module",
    [
        "rewardkit.pipelines.sample",
        "rewardkit.pipelines.sample.filters",
        "rewardkit.pipelines.sample.metrics",
        "rewardkit.pipelines.sample.select",
        "rewardkit.pipelines.sample.dedup",
        "rewardkit.pipelines.sft",
    ],
)
def test_module_all_names_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert [name for name in mod.__all__ if not hasattr(mod, name)] == []


def test_import_stays_light() -> None:
    heavy = ["torch", "transformers", "trl", "datasets", "pyarrow", "llama_cpp"]
    code = (
        "import sys, rewardkit.pipelines.sample, rewardkit.pipelines.sft, rewardkit.cli.sample\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
