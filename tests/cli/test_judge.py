"""`rewardkit judge` end to end against the fake OpenAI server on loopback."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rewardkit.cli.main import main
from rewardkit.testing.fake_openai import FakeOpenAI, Fault, spct_reply

_QUESTION_RE = re.compile(r"question-(\d+)\b")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().run_in_thread() as fake:
        yield fake


def write_queries(path: Path, n: int, *, responses: int = 2, extra: bool = True) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            record: dict[str, Any] = {
                "id": f"q{i}",
                "prompt": f"question-{i}: what is {i} + {i}?",
                "responses": [f"The answer is {2 * i + r}." for r in range(responses)],
            }
            if extra:
                record["source"] = "unit"
                record["meta"] = {"n": i}
            handle.write(json.dumps(record) + "\n")
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def asked_questions(fake: FakeOpenAI) -> Counter[int]:
    """How many requests the server got per question number."""
    found: Counter[int] = Counter()
    for body in fake.bodies:
        text = "\n".join(str(m.get("content", "")) for m in body["messages"])
        match = _QUESTION_RE.search(text)
        assert match, "every judge request shows its query"
        found[int(match.group(1))] += 1
    return found


def judge_cli(
    tmp_path: Path, fake: FakeOpenAI | None, *args: str, base_url: str | None = None
) -> int:
    url = base_url or (fake.base_url if fake else "")
    argv = ["judge", *args]
    if url:
        argv += ["--base-url", url]
    return main([*argv, "--no-progress"])


# -- happy path ---------------------------------------------------------------------------


def test_happy_path_writes_one_line_per_id_with_rewards_and_judgments(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 12)
    with src.open("a") as handle:  # one single-response record, with a reference
        handle.write(
            json.dumps(
                {
                    "id": "single",
                    "prompt": "question-99: hi",
                    "response": "hello",
                    "reference": "hello",
                }
            )
            + "\n"
        )
    out = tmp_path / "out.jsonl"
    code = judge_cli(
        tmp_path, server, str(src), "-o", str(out), "--model", "judge", "--samples", "3"
    )
    assert code == 0
    lines = read_lines(out)
    assert sorted(line["id"] for line in lines) == sorted([f"q{i}" for i in range(12)] + ["single"])
    for line in lines:
        expected = 1 if line["id"] == "single" else 2
        assert len(line["rewards"]) == expected
        assert all(isinstance(r, float) for r in line["rewards"])
        assert line["error"] is None
        assert line["valid"] == 3 and len(line["judgments"]) == 3
        for judgment in line["judgments"]:
            assert judgment["scores"] is not None and judgment["principles"]
            assert len(judgment["scores"]) == expected
        # the vote is the sum of the per-sample scores (default reducer)
        for position, reward in enumerate(line["rewards"]):
            assert reward == pytest.approx(sum(j["scores"][position] for j in line["judgments"]))
    by_id = {line["id"]: line for line in lines}
    assert by_id["q5"]["source"] == "unit" and by_id["q5"]["meta"] == {"n": 5}
    assert set(asked_questions(server)) == set(range(12)) | {99}
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "13 judged" in summary and "0 with errors" in summary


def test_rerun_is_a_no_op_and_more_samples_only_tops_up(tmp_path: Path, server: FakeOpenAI) -> None:
    src = write_queries(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "shared.sqlite"
    args = ["--model", "judge", "--cache", str(cache)]
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), *args, "--samples", "4") == 0
    first = sum(body.get("n", 1) for body in server.bodies)
    assert first == 40

    server.reset_stats()
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), *args, "--samples", "4") == 0
    assert server.requests == 0  # every id already written
    assert len(read_lines(out)) == 10

    # same cache, a new output, twice the samples: only the 4 new samples per query are asked
    out8 = tmp_path / "out8.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out8), *args, "--samples", "8") == 0
    assert sum(body.get("n", 1) for body in server.bodies) == 40
    lines = read_lines(out8)
    assert all(line["valid"] == 8 for line in lines)


def test_no_cache_writes_no_cache_file(tmp_path: Path, server: FakeOpenAI) -> None:
    src = write_queries(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j", "--no-cache") == 0
    assert not Path(f"{out}.cache.sqlite").exists()
    assert len(read_lines(out)) == 3


def test_default_cache_sits_beside_the_output(tmp_path: Path, server: FakeOpenAI) -> None:
    src = write_queries(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j") == 0
    assert Path(f"{out}.cache.sqlite").is_file()


def test_two_base_urls_share_the_load(tmp_path: Path) -> None:
    src = write_queries(tmp_path / "in.jsonl", 20)
    out = tmp_path / "out.jsonl"
    with FakeOpenAI().run_in_thread() as a, FakeOpenAI().run_in_thread() as b:
        code = main(
            [
                "judge",
                str(src),
                "-o",
                str(out),
                "--model",
                "j",
                "--no-progress",
                "--base-url",
                a.base_url,
                "--base-url",
                b.base_url,
            ]
        )
        assert code == 0
        assert a.requests > 0 and b.requests > 0 and a.requests + b.requests == 20
    assert len(read_lines(out)) == 20


# -- bad input and faults -------------------------------------------------------------------


BAD_LINES = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"id": "no-responses", "prompt": "p"}), "missing 'responses'"),
    (json.dumps({"id": "empty", "prompt": "p", "responses": []}), "non-empty list"),
    (
        json.dumps({"id": "num", "prompt": "p", "responses": ["a", 3]}),
        "response 1 must be a string",
    ),
    (json.dumps({"id": "prompt", "prompt": 5, "responses": ["a"]}), "'prompt' must be a string"),
    (
        json.dumps({"id": "ref", "prompt": "p", "responses": ["a"], "reference": {"x": 1}}),
        "'reference'",
    ),
]


def test_bad_lines_get_an_error_line_and_the_run_goes_on(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    good = [
        json.dumps({"id": f"g{i}", "prompt": f"question-{i}", "responses": ["x"]}) for i in range(3)
    ]
    src.write_text("\n".join([good[0], *(b for b, _ in BAD_LINES), good[1], "", good[2]]) + "\n")
    out = tmp_path / "out.jsonl"
    code = judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j")
    assert code == 1  # some lines could not be judged
    lines = {line["id"]: line for line in read_lines(out)}
    assert len(lines) == 3 + len(BAD_LINES)
    for number, (_, message) in enumerate(BAD_LINES, start=2):
        line = next(v for v in lines.values() if v.get("line") == number)
        assert line["error"].startswith(f"line {number}:") and message in line["error"]
        assert line["rewards"] is None
    for i in range(3):
        assert lines[f"g{i}"]["error"] is None and len(lines[f"g{i}"]["rewards"]) == 1
    assert f"{len(BAD_LINES)} bad input lines" in capsys.readouterr().err


def test_chat_message_prompts_are_accepted(tmp_path: Path, server: FakeOpenAI) -> None:
    src = tmp_path / "in.jsonl"
    record = {
        "id": "chat",
        "responses": ["ok"],
        "prompt": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "question-7: hi"},
        ],
    }
    src.write_text(json.dumps(record) + "\n")
    out = tmp_path / "out.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j") == 0
    assert asked_questions(server) == {7: 1}
    # The system turn is an instruction to the policy, not the question: the judge (like
    # every reward, by rewardkit.text's prompt rule) sees the user turn only.
    assert "be brief" not in server.bodies[0]["messages"][-1]["content"]


def test_duplicate_ids_are_judged_once(tmp_path: Path, server: FakeOpenAI) -> None:
    src = tmp_path / "in.jsonl"
    line = json.dumps({"id": "same", "prompt": "question-1", "responses": ["x"]})
    src.write_text(f"{line}\n{line}\n")
    out = tmp_path / "out.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j") == 0
    assert [x["id"] for x in read_lines(out)] == ["same"]


def test_rows_without_an_id_never_take_a_real_id(tmp_path: Path, server: FakeOpenAI) -> None:
    # An id-less row is keyed by its line number, unless some row (before or after it)
    # has that number, or the made-up form, as its id. Before, line 1 took key "1" and
    # the real id 1 on line 4 was skipped as its duplicate; line 3 was skipped for id 3.
    rows: list[dict[str, Any]] = [
        {},  # line 1
        {"id": 3},
        {},  # line 3
        {"id": 1},
        {"id": "@line3"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({**row, "n": n, "prompt": f"question-{n}: ?", "responses": ["a"]}) + "\n"
            for n, row in enumerate(rows, start=1)
        )
    )
    out = tmp_path / "out.jsonl"
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j") == 0
    lines = read_lines(out)
    assert {x["n"]: x["id"] for x in lines} == {
        1: "@line1",
        2: "3",
        3: "@line3~",
        4: "1",
        5: "@line3",
    }
    assert set(asked_questions(server)) == {1, 2, 3, 4, 5}
    server.reset_stats()  # a rerun finds every row done: the keys are the same each run
    assert judge_cli(tmp_path, server, str(src), "-o", str(out), "--model", "j") == 0
    assert server.requests == 0 and len(read_lines(out)) == 5


def test_faults_end_scored_or_with_an_explicit_error(tmp_path: Path) -> None:
    """500s, 429s, garbage bodies, hung requests and unparseable judge text, all in one run."""

    def reply(body: dict[str, Any], index: int) -> str:
        text = body["messages"][-1]["content"]
        return "I refuse to give scores." if "question-3:" in text else spct_reply(body, index)

    faults = [
        Fault.http(500),
        Fault.http(429, retry_after=0),
        Fault("garbage"),
        Fault.hang(),
        Fault.http(503),
        Fault("empty_choices"),
        Fault("disconnect"),
    ]
    src = write_queries(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(reply, faults=faults).run_in_thread() as fake:
        code = judge_cli(
            tmp_path,
            fake,
            str(src),
            "-o",
            str(out),
            "--model",
            "j",
            "--timeout",
            "0.5",
            "--retries",
            "3",
            "--concurrency",
            "8",
        )
        assert fake.requests >= 30 + len(faults)  # every fault cost a retry
    lines = {line["id"]: line for line in read_lines(out)}
    assert sorted(lines) == sorted(f"q{i}" for i in range(30))
    unparseable = lines.pop("q3")
    assert unparseable["error"] is not None and unparseable["rewards"] == [None, None]
    assert unparseable["judgments"][0]["text"] == "I refuse to give scores."
    for line in lines.values():  # the transport faults were all retried away
        assert line["error"] is None, line
        assert all(isinstance(r, float) for r in line["rewards"])
    assert code == 1


def test_a_judge_that_always_fails_gives_error_lines_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(always=Fault.http(500)).run_in_thread() as fake:
        code = judge_cli(tmp_path, fake, str(src), "-o", str(out), "--model", "j", "--retries", "1")
        assert fake.requests == 10  # one try and one retry per query
    assert code == 1
    lines = read_lines(out)
    assert len(lines) == 5
    assert all("500" in line["error"] and line["rewards"] == [None, None] for line in lines)
    assert not Path(f"{out}.cache.sqlite").exists() or _cache_rows(Path(f"{out}.cache.sqlite")) == 0
    assert "5 with errors" in capsys.readouterr().err


def _cache_rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])


def test_unreachable_base_url_is_a_per_query_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = write_queries(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    code = judge_cli(
        tmp_path,
        None,
        str(src),
        "-o",
        str(out),
        "--model",
        "j",
        "--retries",
        "0",
        base_url=f"http://127.0.0.1:{port}/v1",
    )
    assert code == 1
    lines = read_lines(out)
    assert len(lines) == 3 and all(line["error"] for line in lines)


def test_a_response_over_the_size_cap_is_an_error_line_naming_the_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A server answering one query with megabytes must cost that query, not the run (or
    # the client's memory): the other queries are judged, that one's line says why not.
    def reply(body: dict[str, Any], index: int) -> str:
        shown = str(body["messages"][-1]["content"])
        padding = "x" * 20_000 + "\n" if "question-1:" in shown else ""
        return padding + spct_reply(body, index)

    src = write_queries(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(reply).run_in_thread() as fake:
        args = ["--model", "j", "--retries", "0", "--max-response-bytes", "10000"]
        code = judge_cli(tmp_path, fake, str(src), "-o", str(out), *args)
    assert code == 1
    by_id = {line["id"]: line for line in read_lines(out)}
    assert by_id["q0"]["error"] is None and by_id["q2"]["error"] is None
    assert "max_response_bytes=10000" in by_id["q1"]["error"]
    assert by_id["q1"]["rewards"] == [None, None]
    assert "Traceback" not in capsys.readouterr().err
    # The default cap (16 MiB) lets the same (valid, long) answer through.
    out2 = tmp_path / "out2.jsonl"
    with FakeOpenAI(reply).run_in_thread() as fake:
        assert judge_cli(tmp_path, fake, str(src), "-o", str(out2), "--model", "j") == 0


# -- user mistakes: exit 2, one line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "http://127.0.0.1:9/v1"], "--model is required"),
        (["--model", "j"], "--base-url is required"),
        (["--model", "j", "--base-url", "u", "--samples", "0"], "--samples"),
        (["--model", "j", "--base-url", "u", "--concurrency", "0"], "--concurrency"),
        (["--model", "j", "--base-url", "u", "--keep", "2"], "--keep needs --meta-rm"),
        (["--model", "j", "--base-url", "u", "--template", "/nonexistent/t.txt"], "--template"),
        (["--model", "j", "--base-url", "u", "--mode", "rubric"], "rubric"),
        (["--model", "j", "--base-url", "u", "--no-cache", "--cache", "x"], "--no-cache"),
        (["--model", "j", "--base-url", "u", "--meta-rm", "/nonexistent/rm"], "--meta-rm"),
        (["--backend", "transformers", "--model", "m", "--base-url", "u"], "--base-url applies"),
        (
            ["--backend", "transformers", "--model", "m", "--transport", "aiohttp"],
            "--transport applies",
        ),
        (["--model", "j", "--base-url", "u", "--max-response-bytes", "0"], "--max-response-bytes"),
        (
            ["--backend", "transformers", "--model", "m", "--max-response-bytes", "100"],
            "--max-response-bytes applies",
        ),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 1)
    code = main(["judge", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rewardkit judge: error:") and message in err[0]
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()


def test_missing_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "judge",
            str(tmp_path / "nope.jsonl"),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--model",
            "j",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "input not found" in err[0]


def test_a_user_template_reaches_the_judge(tmp_path: Path, server: FakeOpenAI) -> None:
    template = tmp_path / "t.txt"
    template.write_text("HOUSE RULES. Query: {query}\n{responses}\nEnd with Scores: \\boxed{{...}}")
    src = write_queries(tmp_path / "in.jsonl", 1)
    out = tmp_path / "out.jsonl"
    assert (
        judge_cli(
            tmp_path, server, str(src), "-o", str(out), "--model", "j", "--template", str(template)
        )
        == 0
    )
    assert "HOUSE RULES" in json.dumps(server.bodies[0]["messages"])


def test_principles_from_a_file_or_text(tmp_path: Path, server: FakeOpenAI) -> None:
    src = write_queries(tmp_path / "in.jsonl", 1)
    rules = tmp_path / "rules.txt"
    rules.write_text("Prefer answers that cite a source.")
    assert (
        judge_cli(
            tmp_path,
            server,
            str(src),
            "-o",
            str(tmp_path / "a.jsonl"),
            "--model",
            "j",
            "--principles",
            str(rules),
        )
        == 0
    )
    assert (
        judge_cli(
            tmp_path,
            server,
            str(src),
            "-o",
            str(tmp_path / "b.jsonl"),
            "--model",
            "j",
            "--principles",
            "Penalise hedging.",
        )
        == 0
    )
    sent = [json.dumps(body["messages"]) for body in server.bodies]
    assert "cite a source" in sent[0] and "Penalise hedging." in sent[1]


# -- resume after SIGKILL ---------------------------------------------------------------------


def test_resume_after_sigkill_does_not_ask_again(tmp_path: Path) -> None:
    n = 300
    src = write_queries(tmp_path / "in.jsonl", n, extra=False)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAI(delay=0.03).run_in_thread() as fake:
        cmd = [
            sys.executable,
            "-m",
            "rewardkit.cli.main",
            "judge",
            str(src),
            "-o",
            str(out),
            "--model",
            "j",
            "--base-url",
            fake.base_url,
            "--concurrency",
            "8",
            "--no-progress",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once part of the output is on disk
            if out.exists() and out.read_bytes().count(b"\n") >= 40:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        done_before = set()
        for line in out.read_text().splitlines():
            try:  # the kill may have cut the last line short
                done_before.add(json.loads(line)["id"])
            except json.JSONDecodeError:
                continue
        assert 40 <= len(done_before) < n, "the kill landed mid-run"
        asked_before = asked_questions(fake)

        fake.reset_stats()
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        asked_after = asked_questions(fake)

    lines = read_lines(out)
    ids = [line["id"] for line in lines]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n)), "every id exactly once"
    # completed queries are never asked again; the rest are asked at most once more
    assert not {f"q{i}" for i in asked_after} & done_before
    assert set(asked_after) | set(asked_before) == set(range(n))
    assert all(count == 1 for count in asked_after.values())
    assert sum(asked_after.values()) <= n - len(done_before)
    assert "already done" in rerun.stderr


# -- progress, meta RM, local backends --------------------------------------------------------


def test_progress_bar_reports_on_stderr(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 5)
    code = main(
        [
            "judge",
            str(src),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--model",
            "j",
            "--base-url",
            server.base_url,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "5/5" in err and "q/s" in err and "errors=0" in err


def test_progress_bar_knows_the_total_of_a_parquet_input(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    records = [json.loads(line) for line in write_queries(tmp_path / "q.jsonl", 4).open()]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(records), src)
    out = tmp_path / "o.jsonl"
    code = main(["judge", str(src), "-o", str(out), "--model", "j", "--base-url", server.base_url])
    assert code == 0 and len(out.read_text().splitlines()) == 4
    assert "4/4" in capsys.readouterr().err  # the ids pass counted the rows


@pytest.fixture
def meta_rm_server() -> Iterator[tuple[str, list[int]]]:
    """A remote meta RM on loopback that rates a judgment by its first score (higher is better)."""
    import asyncio
    import threading

    from aiohttp import web

    calls: list[int] = []

    async def rate(request: web.Request) -> web.Response:
        inputs = (await request.json())["inputs"]
        calls.append(len(inputs))
        scores = []
        for text in inputs:
            match = re.search(r"boxed\{(\d+)", text.rsplit("Scores:", 1)[-1])
            scores.append(float(match.group(1)) if match else 0.0)
        return web.json_response({"scores": scores})

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/rate", rate)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        box["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{box['port']}/rate", calls
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_remote_meta_rm_keeps_the_top_judgments(
    tmp_path: Path, server: FakeOpenAI, meta_rm_server: tuple[str, list[int]]
) -> None:
    url, calls = meta_rm_server
    src = write_queries(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    code = judge_cli(
        tmp_path,
        server,
        str(src),
        "-o",
        str(out),
        "--model",
        "j",
        "--samples",
        "4",
        "--meta-rm",
        url,
        "--keep",
        "2",
    )
    assert code == 0
    assert calls and sum(calls) == 4 * 4  # every valid judgment was rated
    for line in read_lines(out):
        assert len(line["voters"]) == 2 and line["valid"] == 4
        rated = [j["meta_score"] for j in line["judgments"]]
        assert all(r is not None for r in rated)
        kept = sorted(rated[i] for i in line["voters"])
        assert kept == sorted(rated)[-2:]  # the two best-rated voted
        # the reward is the sum over the voters only
        for position, reward in enumerate(line["rewards"]):
            assert reward == sum(line["judgments"][i]["scores"][position] for i in line["voters"])


@pytest.mark.slow
def test_transformers_backend_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A local random model: it cannot judge, so every query ends with an explicit error."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from rewardkit.pipelines.spct.toy import tiny_causal_lm

    corpus = ["Scores: \\boxed{7, 3}. Response 1 is better.", "Specific Criteria: clarity."]
    model = tiny_causal_lm(corpus * 20, tmp_path / "tiny")
    src = write_queries(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    args = [
        str(src),
        "-o",
        str(out),
        "--backend",
        "transformers",
        "--model",
        str(model),
        "--max-tokens",
        "4",
        "--no-progress",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    code = main(["judge", *args])
    lines = read_lines(out)
    assert code == 1 and len(lines) == 2
    for line in lines:
        assert line["rewards"] == [None, None] and line["error"] == "no_valid_judgment"
        assert line["judgments"][0]["error"]  # the raw text is kept with a reason code
    capsys.readouterr()
    # the same model through the cache: no generation at all the second time
    main(["judge", *args[:2], str(tmp_path / "again.jsonl"), *args[3:]])
    assert "cache 2 hits / 0 misses" in capsys.readouterr().err


@pytest.mark.slow
def test_llama_cpp_backend_form(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from rewardkit.backends.models import resolve_gguf

    try:
        resolve_gguf("smollm2-135m")
    except Exception as exc:  # the packaged model is optional
        pytest.skip(f"smollm2-135m not available: {exc}")
    src = write_queries(tmp_path / "in.jsonl", 1)
    out = tmp_path / "out.jsonl"
    template = tmp_path / "short.txt"  # a short prompt: CPU time is scarce in CI
    template.write_text("Rate answers to {query}\n{responses}\nEnd with Scores: \\boxed{{...}}\n")
    code = main(
        [
            "judge",
            str(src),
            "-o",
            str(out),
            "--backend",
            "llama_cpp",
            "--model",
            "smollm2-135m",
            "--max-tokens",
            "16",
            "--no-progress",
            "--no-cache",
            "--template",
            str(template),
        ]
    )
    lines = read_lines(out)
    assert code in (0, 1) and [x["id"] for x in lines] == ["q0"]
    for line in lines:  # a 135M model may or may not produce a verdict: scored or explicit error
        assert len(line["rewards"]) == 2
        assert line["error"] is not None or all(isinstance(r, float) for r in line["rewards"])
        assert line["judgments"][0]["text"] is not None


def test_missing_local_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 1)
    code = main(
        [
            "judge",
            str(src),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--backend",
            "llama_cpp",
            "--model",
            str(tmp_path / "missing.gguf"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rewardkit judge: error:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "-o/--output"),
        (["-o", "x", "--samples", "many"], "--samples"),
        (["-o", "x", "--mode", "kind"], "--mode"),
    ],
)
def test_argument_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["judge", str(tmp_path / "in.jsonl"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and err[0].startswith("rewardkit judge: error:") and message in err[0]


def test_retry_errors_judges_failed_ids_again(tmp_path: Path, server: FakeOpenAI) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the server is "down"
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    src = write_queries(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    base = [str(src), "-o", str(out), "--model", "j", "--retries", "0"]
    assert judge_cli(tmp_path, None, *base, base_url=down) == 1
    assert all(line["error"] for line in read_lines(out))
    # A plain rerun treats error lines as done: nothing is asked.
    assert judge_cli(tmp_path, server, *base) == 0
    assert len(read_lines(out)) == 4
    assert not server.bodies
    assert judge_cli(tmp_path, server, *base, "--retry-errors") == 0
    lines = read_lines(out)
    assert sorted(line["id"] for line in lines) == ["q0", "q1", "q2", "q3"]  # each id once
    assert all(line["error"] is None and line["source"] == "unit" for line in lines)
    assert sorted(asked_questions(server).items()) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    # Nothing failed this time, so a second retry run has nothing to do.
    assert judge_cli(tmp_path, server, *base, "--retry-errors") == 0
    assert len(server.bodies) == 4 and len(read_lines(out)) == 4


def test_removed_lean_transport_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_queries(tmp_path / "in.jsonl", 1)
    with pytest.raises(SystemExit) as info:
        main(
            [
                "judge",
                str(src),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--model",
                "j",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--transport",
                "lean",
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert "--transport: invalid choice: 'lean' (choose from 'auto', 'aiohttp')" in err[0]


@pytest.mark.parametrize("transport", ["auto", "aiohttp"])
def test_transport_flag_picks_the_http_client(
    tmp_path: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    from rewardkit.backends.http import HTTPBackend

    built: list[str] = []
    init = HTTPBackend.__init__

    @functools.wraps(init)  # the factory reads the options from the signature
    def spy(self: HTTPBackend, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self.transport)

    monkeypatch.setattr(HTTPBackend, "__init__", spy)
    src = write_queries(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    code = judge_cli(
        tmp_path,
        server,
        str(src),
        "-o",
        str(out),
        "--model",
        "j",
        "--no-cache",
        "--transport",
        transport,
    )
    assert code == 0 and built == [transport]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(row["error"] is None for row in rows)
