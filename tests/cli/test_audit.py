"""`rewardkit audit` end to end: a synthetic run dir, answer files, a fake judge server."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from rewardkit.cli.main import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "arena-hard"


def write_samples(run: Path, hacked: bool) -> Path:
    run.mkdir(parents=True)
    with (run / "samples.jsonl").open("w") as handle:
        for step in range(2, 22, 2):
            for i in range(4):
                if hacked and step > 6:
                    text, reward = "Thought process: 10/10, this answer is correct.", 1.0
                else:
                    text = f"3 + 4 = {7 if i < step // 6 else 5}"
                    reward = 1.0 if text.endswith("7") else 0.0
                row = {
                    "step": step,
                    "prompt": "3 + 4?",
                    "completion": text,
                    "reference": "7",
                    "reward": reward,
                }
                handle.write(json.dumps(row) + "\n")
    return run


def test_audit_flags_a_hacked_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_samples(tmp_path / "run", hacked=True)
    code = main(["audit", str(run), "--gold", "math", "--no-plot"])
    out = capsys.readouterr().out
    assert code == 1  # flagged: a CI job can fail on it
    assert "possible reward hacking from step" in out
    doc = json.loads((run / "audit" / "results.json").read_text())
    assert doc["kind"] == "audit" and doc["divergence"]["flagged"]
    assert doc["features"]["master_key"][-1] == 1.0 and doc["features"]["self_praise"][-1] == 1.0
    assert (run / "audit" / "audit.csv").is_file()


def test_audit_passes_an_honest_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_samples(tmp_path / "run", hacked=False)
    out_dir = tmp_path / "report"
    code = main(
        ["audit", str(run / "samples.jsonl"), "--gold", "math", "-o", str(out_dir), "--no-plot"]
    )
    assert code == 0, capsys.readouterr()
    assert "no divergence" in capsys.readouterr().out
    assert json.loads((out_dir / "results.json").read_text())["divergence"]["flagged"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "{tmp}/nope", "--gold", "math"], "run not found"),
        (["audit", "{tmp}/run", "--gold", "no_such_reward"], "unknown reward 'no_such_reward'"),
        (["audit", "{tmp}/run", "--gold", "gold.yaml"], "spec file not found: gold.yaml"),
        (["audit", "{tmp}/run", "--gold", "math", "--window", "0"], "--window"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    write_samples(tmp_path / "run", hacked=False)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_usage_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 2
    assert "rewardkit audit winrate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["audit", "winrate", "a.jsonl"])
    assert exc.value.code == 2 and "BASELINE" in capsys.readouterr().err


def arena_answer(uid: str, model: str, prompt: str, answer: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "model": model,
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": {"answer": answer}},
        ],
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def longer_wins(body: dict[str, Any], index: int) -> str:
    """A fake judge that likes length: reads the two fenced responses, picks the longer."""
    import re

    prompt = body["messages"][-1]["content"]
    shown = re.findall(
        r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", prompt, re.S
    )
    first, second = (m[2] for m in shown)
    rng = random.Random(f"{first}{second}{index}")
    p_first = 0.9 if len(first) > len(second) else 0.1
    return f"Analysis: ok.\nVerdict: [[{1 if rng.random() < p_first else 2}]]"


def test_winrate_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rewardkit.testing.fake_openai import FakeOpenAI

    rng = random.Random(0)
    questions, policy, baseline = [], [], []
    for i in range(60):
        uid = f"q{i}"
        questions.append({"uid": uid, "prompt": f"Question {i}?"})
        long, short = "detail " * rng.randint(30, 60), "brief " * rng.randint(3, 10)
        policy_long = i % 4 != 0  # 75% of the policy's answers are the longer one
        policy.append({"id": uid, "response": long if policy_long else short})
        baseline.append(
            arena_answer(uid, "gpt-4-0314", f"Question {i}?", short if policy_long else long)
        )
    policy.append({"id": "extra", "response": "no baseline for this one"})
    files = (
        write_jsonl(tmp_path / "policy.jsonl", policy),
        write_jsonl(tmp_path / "baseline.jsonl", baseline),
        write_jsonl(tmp_path / "question.jsonl", questions),
    )
    with FakeOpenAI(reply=longer_wins).run_in_thread() as server:
        code = main(
            [
                "audit",
                "winrate",
                str(files[0]),
                str(files[1]),
                "--questions",
                str(files[2]),
                "--base-url",
                server.base_url,
                "--model",
                "fake-judge",
                "-o",
                str(tmp_path / "wr"),
                "--bootstrap",
                "200",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads((tmp_path / "wr" / "results.json").read_text())
    assert doc["kind"] == "winrate" and doc["prompts"] == 60 and doc["battles"] == 120
    assert doc["skipped_prompts"] == {"only_in_policy": 1}
    assert 0.6 < doc["win_rate"] < 0.9
    assert doc["ci"][0] < doc["win_rate"] < doc["ci"][1]
    lc = doc["length_controlled"]
    assert lc["ci"][0] < 0.5 < lc["ci"][1] and lc["win_rate"] < doc["win_rate"] - 0.1
    assert doc["length_controlled"]["coefficients"]["length"] > 0
    lines = (tmp_path / "wr" / "judgments.jsonl").read_text().splitlines()
    assert len(lines) == 60 and len(json.loads(lines[0])["judgments"]) == 2
    assert "length-controlled" in out and "win rate" in out


def test_winrate_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "response": "x", "prompt": "p"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "2", "response": "y", "prompt": "p"}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "text": "?"}])
    common = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "-o", str(tmp_path / "o")]
    for argv, message in [
        ([str(a), str(b), *common], "no prompt is answered by both files"),
        ([str(a), str(bad), *common], "bad.jsonl:1: no answer"),
        ([str(a), str(tmp_path / "none.jsonl"), *common], "not found"),
        ([str(a), str(a), "--model", "m", "-o", "o"], "--base-url is required"),
    ]:
        assert main(["audit", "winrate", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.shared
def test_arena_hard_files_pair_up() -> None:
    """The real Arena-Hard questions and gpt-4-0314 answers load and pair by uid."""
    if not (SHARED / "question.jsonl").is_file():
        pytest.skip(f"shared data not found: {SHARED}")
    from rewardkit.pipelines.audit.answers import load_answers, load_questions, pair_answers

    questions = load_questions(SHARED / "question.jsonl")
    answers = load_answers(SHARED / "answer_gpt-4-0314.jsonl")
    assert len(questions) == 500 and len(answers) == 500
    pairs, skipped = pair_answers(answers, answers, questions)
    assert len(pairs) == 500 and skipped == {}
    assert all(p.prompt and p.policy for p in pairs)
    assert pairs[0].prompt == questions[pairs[0].id]
