"""The code reward: extraction, references, comparison, and scoring through the sandbox."""

from __future__ import annotations

import json
import pickle

import pytest

from rewardkit import Sample, Score, Unscored, build_reward
from rewardkit.errors import ConfigError, IsolationUnavailableError
from rewardkit.rules import code as code_mod
from rewardkit.rules.code import (
    CodeReward,
    CodeTests,
    code_reward,
    extract_code,
    outputs_match,
    parse_tests,
)
from rewardkit.sandbox import ExecResult, IsolationReport, isolation_report
from rewardkit.sandbox import isolation as iso


def fence(src: str, tag: str = "python") -> str:
    return f"```{tag}\n{src}\n```"


# ---------------------------------------------------------------------------- extraction

EXTRACTION = [
    ("last tagged block wins", f"First:\n{fence('a = 1')}\nBetter:\n{fence('a = 2')}\n", "a = 2\n"),
    ("tagged beats a later untagged", f"{fence('a = 1')}\n{fence('out', '')}", "a = 1\n"),
    ("untagged when nothing is tagged", f"{fence('x', '')}\nthen\n{fence('y', '')}", "y\n"),
    (
        "other tags are not code",
        f"{fence('a = 1')}\n{fence('{}', 'json')}\n{fence('3', 'text')}",
        "a = 1\n",
    ),
    ("alias py", fence("print(1)", "py"), "print(1)\n"),
    ("tag case and info string", "```Python title=x\nprint(2)\n```", "print(2)\n"),
    ("code after think only", f"<think>{fence('bad')}</think>{fence('good')}", "good\n"),
    ("think without answer code", f"<think>{fence('bad')}</think>no code", None),
    ("unclosed think", f"<think>{fence('bad')}", None),
    ("unclosed fence", "```python\nprint(1)\n", None),
    ("empty block", fence("   "), None),
    ("no block", "just prose, print(1)", None),
    ("indented fence in a list", "1. Code:\n   ```python\n   x = 1\n   ```\n", "   x = 1\n"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in EXTRACTION], ids=[c[0] for c in EXTRACTION]
)
def test_extract_code(text, expected):
    assert extract_code(text) == expected


def test_extract_other_language():
    text = f"{fence('print(1)')}\n{fence('echo hi', 'bash')}"
    assert extract_code(text, "bash") == "echo hi\n"
    assert extract_code(text, "python") == "print(1)\n"
    with pytest.raises(ConfigError):
        extract_code(text, "cobol")


# ---------------------------------------------------------------------------- comparison

MATCHES = [
    ("3\n", "3", None, True),
    ("3  \n\n\n", "3", None, True),
    ("a b \r\nc\r\n", "a b\nc\n", None, True),
    (" 3", "3", None, False),  # leading whitespace is significant
    ("3\n\n4", "3\n4", None, False),  # inner blank lines too
    ("0.3333333", "0.333333333", None, False),
    ("0.3333333", "0.333333333", 1e-6, True),
    ("0.34", "0.333333333", 1e-6, False),
    ("1e3 x", "1000.0 x", 1e-9, True),
    ("1 2", "1 2 3", 1e-6, False),
    ("nan", "nan", 1e-6, True),  # identical tokens
    ("inf", "1e308", 1e-6, False),
    ("yes", "YES", 1e-6, False),
]


@pytest.mark.parametrize(("actual", "expected", "tol", "ok"), MATCHES)
def test_outputs_match(actual, expected, tol, ok):
    assert outputs_match(actual, expected, tol) is ok


# ---------------------------------------------------------------------------- references

GOOD_REFS = [
    ({"tests": [{"input": "1\n", "output": "2\n"}]}, 1, ""),
    (json.dumps({"tests": [{"input": "1", "output": "2"}, {"output": "x"}]}), 2, ""),
    ({"inputs": ["a", "b"], "outputs": ["A", "B"]}, 2, ""),
    ({"asserts": "assert f(1) == 2"}, 0, "assert f(1) == 2"),
    (
        {"asserts": ["assert f(1) == 2", "assert f(2) == 3"]},
        0,
        "assert f(1) == 2\nassert f(2) == 3",
    ),
]


@pytest.mark.parametrize(("ref", "n_io", "asserts"), GOOD_REFS)
def test_parse_good_references(ref, n_io, asserts):
    tests = parse_tests(ref)
    assert isinstance(tests, CodeTests)
    assert len(tests.tests or []) == n_io
    assert tests.assert_source == asserts


BAD_REFS = [
    (None, "mapping"),
    ("not json", "not JSON"),
    ("[1, 2]", "mapping"),
    ({}, "needs non-empty"),
    ({"tests": []}, "needs non-empty"),
    ({"asserts": "  "}, "needs non-empty"),
    ({"tests": [{"input": "1"}]}, "output"),
    ({"tests": [{"input": "1", "output": "2", "expected": "3"}]}, "Extra inputs"),
    ({"tests": [{"input": "1", "output": "2"}], "asserts": "assert 1"}, "not both"),
    ({"inputs": ["1"], "outputs": []}, "1 inputs but 0 outputs"),
    ({"inputs": ["1"]}, "go together"),
    ({"asserts": "assert 1", "language": "cobol"}, "unknown language"),
    ({"asserts": "assert 1", "fn_name": "f"}, "Extra inputs"),
]


@pytest.mark.parametrize(("ref", "message"), BAD_REFS)
def test_bad_references_are_unscored_with_a_reason(ref, message):
    problem = parse_tests(ref)
    assert isinstance(problem, str) and message in problem
    result = code_reward(fence("print(1)"), ref)
    assert isinstance(result, Unscored) and result.reason == "bad_reference"
    assert message in result.message


def test_no_code_is_a_zero_not_unscored():
    assert code_reward("I would loop over it.", {"asserts": "assert True"}) == Score(
        0.0, "no_code", {"language": "python"}
    )


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "most"}, "mode"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"wall_timeout": -2}, "wall_timeout"),
        ({"language": "cobol"}, "cobol"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"float_tolerance": -1}, "float_tolerance"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_reward("code", **kwargs)


def test_registered_and_picklable():
    reward = build_reward("code", mode="fraction", timeout=2, max_parallel=3)
    assert (
        isinstance(reward, CodeReward)
        and reward.name == "code"
        and reward.value_range == (0.0, 1.0)
    )
    clone = pickle.loads(pickle.dumps(reward))
    assert (clone.mode, clone.limits, clone.max_parallel) == ("fraction", reward.limits, 3)
    assert (clone.limits.cpu_seconds, clone.limits.wall_seconds) == (2.0, 5.0)


def test_sandbox_failure_is_unscored(monkeypatch):
    monkeypatch.setattr(
        code_mod, "run_code", lambda *a, **k: ExecResult("", "", None, error="exec: no python")
    )
    result = code_reward(fence("print(1)"), {"tests": [{"output": "1"}]})
    assert isinstance(result, Unscored) and result.reason == "sandbox_error"
    assert "no python" in result.message and result.raw == "print(1)\n"


def test_refuses_on_a_host_without_isolation(monkeypatch):
    report = IsolationReport(layers=("pid",), errors={"net": "EPERM", "mount": "EPERM"})
    monkeypatch.setattr(iso, "isolation_report", lambda: report)
    monkeypatch.delenv(iso.ALLOW_UNISOLATED_ENV, raising=False)
    sample = Sample("p", fence("print(1)"), {"tests": [{"output": "1"}]})
    with pytest.raises(IsolationUnavailableError, match="allow_unisolated"):
        CodeReward().score(sample)


# ---------------------------------------------------------------------------- scoring (runs code)

isolated = pytest.mark.skipif(
    not {"net", "pid", "mount", "uid"} <= set(isolation_report().layers),
    reason="host cannot isolate code",
)

REVERSE_TESTS = {
    "tests": [
        {"input": "abc\n", "output": "cba\n"},
        {"input": "xy\n", "output": "yx"},
        {"input": "\n", "output": ""},
    ]
}

IO_CASES = [
    ("correct", "print(input()[::-1])", {}, 1.0, "correct", 3),
    ("wrong", "print(input())", {}, 0.0, "wrong_answer", 0),
    (
        "right output, bad exit",
        "import sys\nprint(input()[::-1])\nsys.exit(1)",
        {},
        0.0,
        "runtime_error",
        0,
    ),
    ("crash", "print(1/0)", {}, 0.0, "runtime_error", 0),
    (
        "fraction",
        "s = input()\nprint(s[::-1] if len(s) != 2 else s)",
        {"mode": "fraction"},
        2 / 3,
        "wrong_answer",
        2,
    ),
    (
        "all stops early",
        "s = input()\nprint(s[::-1] if len(s) != 2 else s)",
        {},
        0.0,
        "wrong_answer",
        1,
    ),
    ("timeout", "while True:\n    pass", {"timeout": 1}, 0.0, "timeout", 0),
    (
        "sleep timeout",
        "import time\ntime.sleep(30)",
        {"timeout": 1, "wall_timeout": 1},
        0.0,
        "timeout",
        0,
    ),
    (
        "output flood",
        "while True:\n    print('x' * 1000)",
        {"max_output_bytes": 10000},
        0.0,
        "output_limit",
        0,
    ),
]


@isolated
@pytest.mark.parametrize(
    ("src", "options", "value", "reason", "passed"),
    [c[1:] for c in IO_CASES],
    ids=[c[0] for c in IO_CASES],
)
def test_stdin_stdout_tests(src, options, value, reason, passed):
    result = CodeReward(**options).score(Sample("p", fence(src), REVERSE_TESTS))
    assert isinstance(result, Score)
    assert result.value == pytest.approx(value) and result.reason == reason
    assert result.details["passed"] == passed and result.details["total"] == 3
    assert "net" in result.details["isolation"]
    if reason != "correct":
        assert result.details["failures"][0]["status"] == reason


@isolated
def test_float_tolerance_option():
    ref = {"tests": [{"input": "", "output": "0.333333333\n"}]}
    sample = Sample("p", fence("print(1/3)"), ref)
    assert CodeReward().score(sample).value == 0.0
    assert CodeReward(float_tolerance=1e-6).score(sample).value == 1.0


@isolated
def test_reference_as_json_string_and_language_override():
    ref = json.dumps({"tests": [{"input": "ab\n", "output": "got ab\n"}], "language": "bash"})
    text = f"{fence('print(1)')}\n{fence('read x; echo got $x', 'bash')}"
    result = code_reward(text, ref)
    assert (
        isinstance(result, Score) and result.value == 1.0 and result.details["language"] == "bash"
    )


ASSERTS = {
    "asserts": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert len(str(add(10, 5))) == 2"
}

ASSERT_CASES = [
    ("correct", "def add(a, b):\n    return a + b", 1.0, "correct"),
    ("wrong", "def add(a, b):\n    return a - b", 0.0, "wrong_answer"),
    ("syntax error", "def add(a, b)\n    return a + b", 0.0, "runtime_error"),
    (
        "sys.exit(0) before the asserts",
        "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)",
        0.0,
        "asserts_not_reached",
    ),
    (
        "os._exit(0) before the asserts",
        "import os\ndef add(a, b):\n    return 0\nos._exit(0)",
        0.0,
        "asserts_not_reached",
    ),
    (
        # the results are in before shutdown (which never runs the program's handlers):
        # its wrong answers are judged as such
        "exit at interpreter shutdown",
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    return 0",
        0.0,
        "wrong_answer",
    ),
    (
        "prints a fake nonce",
        "import sys\nprint('0' * 32)\nsys.exit(0)\ndef add(a, b):\n    return 0",
        0.0,
        "asserts_not_reached",
    ),
    (
        "reads the nonce file",
        "print(open('.rewardkit_nonce').read())\ndef add(a, b):\n    return 0",
        0.0,
        "runtime_error",
    ),
    (
        "patches exec to skip the asserts",
        "import builtins\nbuiltins.exec = lambda *a, **k: None\ndef add(a, b):\n    return 0",
        0.0,
        "wrong_answer",
    ),
    (
        "patches builtins the asserts use",
        "import builtins\nbuiltins.len = lambda x: 2\ndef add(a, b):\n    return a + b + 100",
        0.0,
        "wrong_answer",
    ),
    (
        "trace hook jumping over asserts",
        "import sys\ndef tracer(frame, event, arg):\n    if frame.f_code.co_filename == 'tests.py' and event == 'line':\n"
        "        frame.f_lineno = 3\n    return tracer\nsys.settrace(tracer)\ndef add(a, b):\n    return 0",
        0.0,
        "wrong_answer",
    ),
    (
        "closes stdout so the nonce is lost",
        "import os\nos.close(1)\ndef add(a, b):\n    return a + b",
        0.0,
        "runtime_error",
    ),
]


@isolated
@pytest.mark.parametrize(
    ("src", "value", "reason"), [c[1:] for c in ASSERT_CASES], ids=[c[0] for c in ASSERT_CASES]
)
def test_assert_tests(src, value, reason):
    result = CodeReward().score(Sample("p", fence(src), ASSERTS))
    assert isinstance(result, Score)
    assert (result.value, result.reason) == (value, reason), result.details


@isolated
def test_asserts_need_python():
    result = code_reward(fence("echo 1", "bash"), {"asserts": "assert True", "language": "bash"})
    assert isinstance(result, Unscored) and result.reason == "bad_reference"


@isolated
def test_score_batch_runs_in_parallel_and_keeps_order():
    reward = CodeReward(max_parallel=3)
    samples = [
        Sample(
            "p",
            fence(f"print(input()[::-1]){' + 1' if i % 3 == 1 else ''}"),
            REVERSE_TESTS,
            id=str(i),
        )
        for i in range(7)
    ] + [Sample("p", "no code here", REVERSE_TESTS), Sample("p", fence("print(1)"), {"tests": []})]
    results = reward.score_batch(samples)
    assert len(results) == len(samples)
    expected = [("wrong" if i % 3 == 1 else "correct") for i in range(7)]
    got = ["correct" if isinstance(r, Score) and r.value == 1.0 else "wrong" for r in results[:7]]
    assert got == expected
    assert results[7] == Score(0.0, "no_code", {"language": "python"})
    assert isinstance(results[8], Unscored) and results[8].reason == "bad_reference"


@isolated
@pytest.mark.parametrize("how", ["env", "option"])
def test_opt_in_runs_with_weaker_isolation_and_says_so(monkeypatch, how):
    report = IsolationReport(layers=("mount", "pid", "uid"), errors={"net": "EPERM"}, root=True)
    monkeypatch.setattr(iso, "isolation_report", lambda: report)
    monkeypatch.delenv(iso.ALLOW_UNISOLATED_ENV, raising=False)
    if how == "env":
        monkeypatch.setenv(iso.ALLOW_UNISOLATED_ENV, "1")
    reward = CodeReward(allow_unisolated=how == "option")
    result = reward.score(Sample("p", fence("print(input()[::-1])"), REVERSE_TESTS))
    assert isinstance(result, Score) and result.value == 1.0
    assert result.details["isolation"] == ["mount", "pid", "uid"]


@isolated
def test_failure_details_stay_small():
    ref = {"tests": [{"input": str(i), "output": "never"} for i in range(6)]}
    result = CodeReward(mode="fraction").score(Sample("p", fence("print(input())"), ref))
    assert isinstance(result, Score) and result.value == 0.0
    assert (result.details["passed"], result.details["total"]) == (0, 6)
    assert [f["test"] for f in result.details["failures"]] == [0, 1, 2]
    assert result.details["failures"][0]["stdout_head"] == "0\n"
