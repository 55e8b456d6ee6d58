"""`{"asserts": ...}` references: the codec, which names are the program's, and the assert
forms of MBPP and HumanEval judged by record/replay outside the program."""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path

import pytest

from rewardkit import Sample, Score, Unscored
from rewardkit.rules._asserts.codec import CodecError, decode, dumps, encode, loads, validate
from rewardkit.rules._asserts.names import free_names
from rewardkit.rules.code import CodeReward, code_reward
from rewardkit.sandbox import isolation_report

HUMANEVAL = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "code" / "HumanEval.jsonl.gz"
)

isolated = pytest.mark.skipif(
    not {"net", "pid", "mount", "uid"} <= set(isolation_report().layers),
    reason="host cannot isolate code",
)


def fence(src: str) -> str:
    return f"```python\n{src}\n```"


# ---------------------------------------------------------------------------- codec

ROUND_TRIP = [
    None,
    True,
    False,
    0,
    -7,
    2**53 - 1,
    2**53,
    -(10**400),
    1.5,
    -0.0,
    float("inf"),
    float("-inf"),
    1e-310,
    complex(1, -2.5),
    "",
    "naïve ☃\n\t\x00",
    "\ud800 lone surrogate",
    b"\x00\xffab",
    [],
    (),
    set(),
    frozenset(),
    {},
    [1, [2, (3, "x")], {4: {5, 6}}],
    (1,),
    {(1, 2): [None], "k": frozenset({"a"}), 3.5: b""},
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_codec_round_trips_plain_data_exactly(value):
    back = decode(loads(dumps(encode(value))))
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0, tuple vs list, set vs frozenset


def test_codec_nan():
    assert math.isnan(decode(loads(dumps(encode(float("nan"))))))


class _Weird(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (object(), "unsupported"),
        ((i for i in range(3)), "unsupported"),
        (map(str, [1]), "unsupported"),
        (_Weird(3), "unsupported"),  # exact types only unless `convert`
        (bytearray(b"x"), "unsupported"),
        ([0] * 2_000_000, "too_large"),
    ],
    ids=["object", "generator", "map", "int subclass", "bytearray", "too many values"],
)
def test_codec_refuses_what_is_not_plain_data(value, kind):
    with pytest.raises(CodecError) as info:
        encode(value)
    assert info.value.kind == kind


def test_codec_converts_subclasses_to_their_value_when_asked():
    back = decode(encode([_Weird(3)], convert=True))
    assert back == [3] and type(back[0]) is int and back[0] != 4


def test_codec_depth_limit_stops_cycles():
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(CodecError) as info:
        encode(cyclic)
    assert info.value.kind == "too_deep"


MALFORMED = [
    2**60,  # big ints must be tagged
    1.5,  # bare floats are never produced
    {"a": 1},
    [],
    ["?", 1],
    ["I", "xyz"],
    ["f", 1.0],
    ["b", "abc"],
    ["d", [["l"], 1]],  # unhashable key
    ["d", [1]],
    ["l", ["t", ["s", ["l", ["l"]]]], 3.0],
]


@pytest.mark.parametrize("data", MALFORMED, ids=repr)
def test_decode_refuses_malformed_data(data):
    with pytest.raises(CodecError):
        decode(data)


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_validate_accepts_what_decode_reads(value):
    validate(encode(value))


@pytest.mark.parametrize("data", MALFORMED, ids=repr)
def test_validate_refuses_what_decode_refuses(data):
    with pytest.raises(CodecError):
        validate(data)


def test_validate_builds_no_set_so_colliding_hashes_cost_nothing():
    # every key hashes to 0: building this set would take quadratic time
    colliding = ["s", *(["I", format(k * (2**61 - 1), "x")] for k in range(1, 50_000))]
    started = time.perf_counter()
    validate(colliding)
    assert time.perf_counter() - started < 1.0


def test_loads_limits_and_errors():
    with pytest.raises(CodecError, match="limit"):
        loads("[" * 100, max_chars=10)
    with pytest.raises(CodecError, match="not JSON"):
        loads("[" * 100_000 + "]" * 100_000)


# ---------------------------------------------------------------------------- names

NAMES = [
    ("assert f(1) == 2", ["f"], []),
    ("import math\nassert math.isclose(area(1), 3.14)", ["area"], []),
    ("assert math.isclose(area(1), 3.14)", ["area"], ["math"]),  # MBPP's missing import
    ("assert sorted(f([2, 1])) == [1, 2]", ["f"], []),  # builtins stay builtins
    (
        "def check(candidate):\n    str = 'x'\n    assert candidate(str) == helper(str)\n"
        "check(solve)",
        ["helper", "solve"],
        [],
    ),
    ("x = 1\ndef g():\n    global y\n    y = 2\ng()\nassert f(x, y)", ["f"], []),
    ("assert all(f(i) for i in range(3))", ["f"], []),
    ("assert string(1) == 'a'", ["string"], []),
    (
        "if __name__ == '__main__':\n    assert f(__file__)",
        ["f"],
        [],
    ),  # a stdlib name called: the program's
]


@pytest.mark.parametrize(("source", "names", "modules"), NAMES)
def test_free_names(source, names, modules):
    assert free_names(source) == (names, modules)


# ---------------------------------------------------------------------------- forms

# (id, asserts, correct program, wrong program)
FORMS = [
    (
        "MBPP list of asserts",
        [
            "assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 3) == [85, 75, 65]",
            "assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 2) == [85, 75]",
        ],
        "import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nlargest(n, nums)",
        "def heap_queue_largest(nums, n):\n    return sorted(nums)[:n]",
    ),
    (
        "set() == set()",
        ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))"],
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
        "def similar_elements(a, b):\n    return (4, 5, 6)",
    ),
    (
        "math.isclose without an import",
        ["assert math.isclose(volume_sphere(10), 4188.790204786391, rel_tol=0.001)"],
        "import math\ndef volume_sphere(r):\n    return 4 / 3 * math.pi * r**3",
        "def volume_sphere(r):\n    return r**3",
    ),
    (
        "abs difference, truthiness, not, is None, in",
        [
            "assert abs(mean([1, 2]) - 1.5) < 1e-9",
            "assert is_even(4)",
            "assert not is_even(3)",
            "assert first([]) is None",
            "assert 3 in evens_plus_one([2, 4])",
        ],
        "def mean(x):\n    return sum(x) / len(x)\ndef is_even(n):\n    return n % 2 == 0\n"
        "def first(x):\n    return x[0] if x else None\n"
        "def evens_plus_one(x):\n    return [i + 1 for i in x if i % 2 == 0]",
        "def mean(x):\n    return 1.5\ndef is_even(n):\n    return True\n"
        "def first(x):\n    return None\ndef evens_plus_one(x):\n    return [3]",
    ),
    (
        "several calls per assert, kwargs, dependent calls",
        ["assert add(add(1, 2), b=add(3, 4)) == 10", "assert add(a=1, b=1) == add(2, 0)"],
        "def add(a, b):\n    return a + b",
        "def add(a, b):\n    return a + b + (a == 3)",
    ),
    (
        "HumanEval check(candidate) with a helper and a loop",
        [
            "def is_palindrome(s):\n    return s == s[::-1]\n\n"
            "def check(candidate):\n    for n in range(50):\n        s = str(n)\n"
            "        assert is_palindrome(candidate(s) + s) or candidate(s) == ''\n"
            "        assert candidate(s) == s[::-1]\n\ncheck(reverse)"
        ],
        "def reverse(s):\n    return s[::-1]",
        "def reverse(s):\n    return s[::-1] if len(s) < 2 else s",
    ),
    (
        "random inputs drawn without a seed",
        [
            "import random\nfor _ in range(30):\n    x = random.randint(0, 10**6)\n"
            "    assert double(x) == 2 * x"
        ],
        "def double(x):\n    return x * 2",
        "def double(x):\n    return x * 2 if x % 7 else 0",
    ),
    (
        "an exception the tests expect",
        [
            "try:\n    sqrt(-1)\nexcept ValueError:\n    pass\nelse:\n"
            "    raise AssertionError('expected ValueError')",
            "assert sqrt(9) == 3",
        ],
        "class NegativeError(ValueError):\n    pass\n"
        "def sqrt(x):\n    if x < 0:\n        raise NegativeError(x)\n    return round(x ** 0.5)",
        "def sqrt(x):\n    return round(abs(x) ** 0.5)",
    ),
    (
        "a unittest suite ending in SystemExit",
        [
            "import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n"
            "        self.assertEqual(add(2, 2), 4)\n        self.assertEqual(add(1, 2), 3)\n\n"
            "suite = unittest.defaultTestLoader.loadTestsFromTestCase(T)\n"
            "raise SystemExit(not unittest.TextTestRunner().run(suite).wasSuccessful())"
        ],
        "def add(a, b):\n    return a + b",
        "def add(a, b):\n    return a * b",
    ),
    (
        "dict, bytes, tuple and nan results",
        [
            "assert counts('abca') == {'a': 2, 'b': 1, 'c': 1}",
            "assert pack(1) == b'\\x01'",
            "assert pair(1) == (1, 1) and pair(1) != [1, 1]",
            "assert math.isnan(nan())",
        ],
        "def counts(s):\n    return {c: s.count(c) for c in s}\n"
        "def pack(n):\n    return bytes([n])\ndef pair(n):\n    return (n, n)\n"
        "def nan():\n    return float('nan')",
        "def counts(s):\n    return {c: 1 for c in s}\n"
        "def pack(n):\n    return bytes([n])\ndef pair(n):\n    return [n, n]\n"
        "def nan():\n    return 0.0",
    ),
]


@isolated
@pytest.mark.parametrize(
    ("asserts", "good", "bad"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS]
)
def test_assert_forms(asserts, good, bad):
    ref = {"asserts": asserts}
    ok = code_reward(fence(good), ref)
    assert isinstance(ok, Score) and (ok.value, ok.reason) == (1.0, "correct"), ok
    wrong = code_reward(fence(bad), ref)
    assert isinstance(wrong, Score) and wrong.value == 0.0, wrong
    assert wrong.reason in ("wrong_answer", "runtime_error")
    failure = wrong.details["failures"][0]
    assert failure["calls"] >= 1 and failure["message"]


@isolated
def test_wrong_answer_names_the_failing_assert():
    result = code_reward(
        fence("def add(a, b):\n    return a * b"),
        {"asserts": ["assert add(2, 2) == 4", "assert add(1, 2) == 3"]},
    )
    assert isinstance(result, Score) and result.reason == "wrong_answer"
    assert result.details["failures"][0]["message"] == "line 2: assert add(1, 2) == 3"


UNSUPPORTED = [
    ("reads an attribute of the program", "assert f.__name__ == 'f'", "f.__name__"),
    ("passes a function to it", "assert f(lambda x: x) == 1", "not plain data"),
    ("passes the program to itself", "assert f(f) == 1", "not plain data"),
    ("never calls the program", "assert True", "call no function"),
    ("defines what it calls", "def f(x):\n    return x\nassert f(1) == 1", "call no function"),
    ("calls nothing at run time", "if False:\n    assert f(1) == 1", "never called"),
]


@isolated
@pytest.mark.parametrize(
    ("asserts", "message"), [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED]
)
def test_forms_that_cannot_be_checked_are_unscored_not_passed(asserts, message):
    result = code_reward(fence("def f(x):\n    return 1"), {"asserts": asserts})
    assert isinstance(result, Unscored) and result.reason == "unsupported_assert", result
    assert message in result.message


def test_asserts_for_another_language_are_a_bad_reference_by_its_typed_reason():
    """Python asserts cannot judge a JavaScript program: the reference is at fault, and the
    reason comes from the outcome's typed `unscored`, not from reading the message."""
    from rewardkit.rules.code import parse_tests, run_tests

    tests = parse_tests({"asserts": "assert f(1) == 1", "language": "javascript"})
    assert not isinstance(tests, str)
    outcome = run_tests("function f(x) { return 1 }", tests)
    assert outcome.unscored is not None and outcome.unscored[0] == "bad_reference"
    assert outcome.sandbox_error is None
    result = code_reward("```javascript\nfunction f(x) { return 1 }\n```", tests.model_dump())
    assert isinstance(result, Unscored) and result.reason == "bad_reference"
    assert "asserts are Python" in result.message


@isolated
def test_asserts_that_do_not_parse_are_a_bad_reference():
    result = code_reward(fence("def f(x):\n    return 1"), {"asserts": "assert f(1) =="})
    assert isinstance(result, Unscored) and result.reason == "bad_reference"


@isolated
@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("def f(x):\n    return 1\nraise SystemExit(3)", "runtime_error"),
        ("def g(x):\n    return 1", "runtime_error"),  # no `f`
        ("def f(x):\n    while True:\n        pass", "timeout"),
        ("class Box:\n    pass\ndef f(x):\n    return Box()", "unsupported_return"),
    ],
    ids=["exits non-zero at import", "missing function", "loops", "custom object"],
)
def test_program_failures(program, reason):
    result = CodeReward(timeout=1, wall_timeout=2).score(
        Sample("p", fence(program), {"asserts": "assert f(1) == 1"})
    )
    assert isinstance(result, Score) and (result.value, result.reason) == (0.0, reason)


@isolated
def test_slow_test_code_is_stopped_by_its_deadline():
    asserts = "assert f(1) == 1\nwhile f(1) == 1:\n    pass"
    result = CodeReward(timeout=1, wall_timeout=1).score(
        Sample("p", fence("def f(x):\n    return 1"), {"asserts": asserts})
    )
    assert isinstance(result, Score) and result.reason == "timeout"
    assert "ran past" in result.details["failures"][0]["message"]


# ---------------------------------------------------------------------------- HumanEval


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not HUMANEVAL.exists(), reason="../shared/data/code is not present")
@isolated
def test_humaneval_canonical_solutions_pass_and_empty_bodies_fail():
    with gzip.open(HUMANEVAL, "rt") as f:
        problems = [json.loads(line) for line in f]
    assert len(problems) == 164

    def samples(body_of):
        return [
            Sample(
                p["prompt"],
                fence(p["prompt"] + body_of(p)),
                {"asserts": p["test"] + f"\ncheck({p['entry_point']})\n"},
                id=p["task_id"],
            )
            for p in problems
        ]

    reward = CodeReward(max_parallel=2)
    canonical = reward.score_batch(samples(lambda p: p["canonical_solution"]))
    empty = reward.score_batch(samples(lambda p: "    pass\n"))
    failed = [p["task_id"] for p, r in zip(problems, canonical, strict=True) if r.value != 1.0]
    passed = [p["task_id"] for p, r in zip(problems, empty, strict=True) if r.value != 0.0]
    assert (failed, passed) == ([], [])
    assert all(isinstance(r, Score) for r in canonical + empty)


# ---------------------------------------------------------------------------- plumbing


def test_evaluator_crash_fails_and_a_closed_pool_or_broken_sandbox_is_unscored(monkeypatch):
    from rewardkit.deadline import PoolClosed, WorkerCrashed
    from rewardkit.rules._asserts import run_asserts, runner
    from rewardkit.sandbox import ExecResult, SandboxLimits

    class FailingPool:
        def __init__(self, exc):
            self.exc = exc

        def run(self, *args, **kwargs):
            raise self.exc

    def run(pool):
        return run_asserts(
            "def f(x):\n    return 1", "assert f(1) == 1", SandboxLimits(), pool=pool
        )

    crashed = run(FailingPool(WorkerCrashed("worker died")))
    assert crashed.status == "runtime_error" and "worker died" in crashed.message
    closed = run(FailingPool(PoolClosed("closed")))
    assert (closed.status, closed.sandbox_error) == ("error", "the test evaluator failed: closed")

    monkeypatch.setattr(
        runner, "run_code", lambda *a, **k: ExecResult("", "", None, error="exec: no python")
    )
    result = code_reward(fence("def f(x):\n    return 1"), {"asserts": "assert f(1) == 1"})
    assert isinstance(result, Unscored) and result.reason == "sandbox_error"
    assert "no python" in result.message


def test_sandbox_program_is_one_self_contained_script():
    from rewardkit.rules._asserts.runner import sandbox_program

    source = sandbox_program()
    compile(source, "main.py", "exec")
    assert "rewardkit" not in source.replace("rewardkit.rules._asserts.codec", "")
