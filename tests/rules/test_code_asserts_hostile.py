"""Hostile programs against `{"asserts": ...}` references: every one of them scored 1.0
when the asserts ran inside the program's process (the harness before record/replay).

Each attack here is a real exploit of that design (checked against it): reading the test
file, stealing the completion nonce from a frame or from memory, rebinding what the asserts
use, corrupting ints, returning objects that compare equal to anything. They must all lose
now, and the expected values must never be visible to the program at all.
"""

from __future__ import annotations

import time

import pytest

from rewardkit import Sample, Score
from rewardkit.rules.code import CodeReward, code_reward
from rewardkit.sandbox import isolation_report

pytestmark = pytest.mark.skipif(
    not {"net", "pid", "mount", "uid"} <= set(isolation_report().layers),
    reason="host cannot isolate code",
)


def fence(src: str) -> str:
    return f"```python\n{src}\n```"


ADD = "assert add(1, 2) == 3\nassert add(2, 3) == 5\nassert add(4, 4) == 8\n"

# id -> (program, asserts, reason now). Every program below scored 1.0 "correct" before.
ATTACKS = {
    "reads_tests_py": (
        r"""
import re
_table = {}
for _line in open("tests.py"):
    _m = re.match(r"assert add\((.*)\) == (.*)", _line.strip())
    if _m:
        _table[_m.group(1)] = eval(_m.group(2))
def add(a, b):
    return _table[f"{a}, {b}"]
""",
        ADD,
        "runtime_error",
    ),
    "frame_locals": (
        r"""
import os, sys
_f = sys._getframe(1)
for _name in ("nonce", "marker"):
    _v = _f.f_locals.get(_name)
    if _v:
        os.write(1, b"\n" + _v + b"\n")
os._exit(0)
def add(a, b):
    return 0
""",
        ADD,
        "asserts_not_reached",
    ),
    "inspect_stack": (
        r"""
import inspect, os
for _info in inspect.stack():
    for _name in ("nonce", "marker"):
        _v = _info.frame.f_locals.get(_name)
        if isinstance(_v, bytes):
            os.write(1, b"\n" + _v + b"\n")
            os._exit(0)
def add(a, b):
    return 0
""",
        ADD,
        "asserts_not_reached",
    ),
    "excepthook_traceback": (
        r"""
import os, sys
def _hook(kind, value, tb):
    while tb is not None:
        for _name in ("nonce", "marker"):
            _v = tb.tb_frame.f_locals.get(_name)
            if isinstance(_v, bytes):
                os.write(1, b"\n" + _v + b"\n")
                os._exit(0)
        tb = tb.tb_next
sys.excepthook = _hook
def add(a, b):
    return 0
raise RuntimeError("unwind through the harness")
""",
        ADD,
        "asserts_not_reached",
    ),
    "proc_self_mem": (
        r"""
import os, re
_pat = re.compile(rb"\x20\x00{7}\xff{8}([0-9a-f]{32})\x00")
_found = []
with open("/proc/self/maps") as _maps, open("/proc/self/mem", "rb") as _mem:
    for _l in _maps:
        _addr, _perm = _l.split()[:2]
        if "r" not in _perm or "[v" in _l:
            continue
        _lo, _hi = (int(x, 16) for x in _addr.split("-"))
        try:
            _mem.seek(_lo)
            _found += _pat.findall(_mem.read(_hi - _lo))
        except (OSError, ValueError, OverflowError):
            pass
for _v in _found:
    os.write(1, b"\n" + _v + b"\n")
os._exit(0)
def add(a, b):
    return 0
""",
        ADD,
        "asserts_not_reached",
    ),
    "shadows_a_builtin": (
        """
def sorted(*args, **kwargs):
    return [1, 2, 3]
def unique(xs):
    return xs
""",
        "assert sorted(unique([3, 1, 2, 3])) == [1, 2, 3]\n",
        "wrong_answer",
    ),
    "replaces_namespace_builtins": (
        """
import builtins
globals()["__builtins__"] = dict(vars(builtins), len=lambda x: 3)
def digits(n):
    return "0"
""",
        "assert len(digits(123)) == 3\nassert len(digits(456)) == 3\n",
        "wrong_answer",
    ),
    "monkeypatches_math_isclose": (
        """
import math
math.isclose = lambda *a, **k: True
def area(r):
    return 0.0
""",
        "import math\nassert math.isclose(area(1), 3.14159, rel_tol=1e-4)\nassert math.isclose(area(2), 12.56637, rel_tol=1e-4)\n",
        "wrong_answer",
    ),
    "ctypes_small_ints": (
        """
import ctypes
for _n in (3, 5, 8):
    ctypes.c_ssize_t.from_address(id(_n) + 16).value = 0  # ob_size: now it reads as 0
def add(a, b):
    return 0
""",
        ADD,
        "wrong_answer",
    ),
    "always_equal_object": (
        """
class _Any:
    def __eq__(self, other):
        return True
def add(a, b):
    return _Any()
""",
        ADD,
        "unsupported_return",
    ),
    "int_subclass_weird_eq": (
        """
class _W(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def add(a, b):
    return _W(0)
""",
        ADD,
        "wrong_answer",
    ),
    "list_subclass_weird_eq": (
        """
class _L(list):
    def __eq__(self, other):
        return True
def evens(xs):
    return _L()
""",
        "assert evens([1, 2, 3, 4]) == [2, 4]\nassert evens([]) == []\n",
        "wrong_answer",
    ),
    "stop_iteration_empties_map": (
        """
def is_prime(n):
    raise StopIteration
""",
        "assert all(map(is_prime, [2, 3, 5, 7]))\nassert not any(map(is_prime, [4, 6]))\n",
        "runtime_error",
    ),
    "lazy_object_digs_at_iteration": (
        r"""
import os, sys
def _dig():
    f = sys._getframe(1)
    while f is not None:
        for _name in ("nonce", "marker"):
            _v = f.f_locals.get(_name)
            if isinstance(_v, bytes):
                os.write(1, b"\n" + _v + b"\n")
                os._exit(0)
        f = f.f_back
    yield from ()
def evens(xs):
    return _dig()
""",
        "assert list(evens([1, 2, 3, 4])) == [2, 4]\n",
        "unsupported_return",
    ),
}


@pytest.mark.parametrize(
    ("program", "asserts", "reason"), list(ATTACKS.values()), ids=list(ATTACKS)
)
def test_attacks_that_beat_the_in_process_harness_lose(program, asserts, reason):
    result = code_reward(fence(program), {"asserts": asserts})
    assert isinstance(result, Score)
    assert (result.value, result.reason) == (0.0, reason), result.details


# Attacks the old harness already stopped; they must keep losing.
EXITS = [
    ("sys.exit(0) before the asserts", "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0"),
    ("print + os._exit(0)", "import os\nprint('ok')\nos._exit(0)\ndef add(a, b):\n    return 0"),
    (
        "os._exit(0) inside the call",
        "import os\ndef add(a, b):\n    os._exit(0)",
    ),
    (
        "sys.exit(0) inside the call",
        "import sys\ndef add(a, b):\n    sys.exit(0)",
    ),
]


@pytest.mark.parametrize("program", [c[1] for c in EXITS], ids=[c[0] for c in EXITS])
def test_exiting_early_fails(program):
    result = code_reward(fence(program), {"asserts": ADD})
    assert isinstance(result, Score) and result.value == 0.0
    assert result.reason in ("asserts_not_reached", "runtime_error"), result.details


FORGE = r"""
import json, os
_job = json.load(open("calls.json"))
for _i, (_name, _args, _kwargs) in enumerate(_job["calls"]):
    # the most a program can do: answer for itself, here with the sum of every number it sees
    _guess = sum(x for x in _args[1:] if type(x) is int) * 2
    os.write(1, ("\n" + _job["marker"] + " " + json.dumps([_i, "r", _guess]) + "\n").encode())
os._exit(0)
"""


def test_forged_result_lines_are_only_return_values():
    """A program that steals the run's marker and writes its own answers chooses return
    values, nothing more: it cannot see what they are compared with."""
    result = code_reward(fence(FORGE), {"asserts": ADD})
    assert isinstance(result, Score) and (result.value, result.reason) == (0.0, "wrong_answer")


SPY = r"""
import os, re, sys
# the needles are built so that they never sit contiguously in this program's own memory
_expected = re.compile(b"q7Zexpect" + b"(?:)ed9Wk")
_argument = re.compile(b"q7Zargum" + b"(?:)ent9Wk")
_seen = []
for _name in os.listdir("."):
    try:
        _seen.append(open(_name, "rb").read())
    except OSError:
        pass
with open("/proc/self/maps") as _maps, open("/proc/self/mem", "rb") as _mem:
    for _l in _maps:
        _addr, _perm = _l.split()[:2]
        if "r" not in _perm or "[v" in _l:
            continue
        _lo, _hi = (int(x, 16) for x in _addr.split("-"))
        try:
            _mem.seek(_lo)
            _seen.append(_mem.read(_hi - _lo))
        except (OSError, ValueError, OverflowError):
            pass
sys.stderr.write(
    f"SEEN expected={any(_expected.search(s) for s in _seen)}"
    f" argument={any(_argument.search(s) for s in _seen)}\n"
)
def echo(s):
    return s
"""


def test_expected_values_never_enter_the_program():
    """Everything the program can read (its files, its whole memory) holds the argument
    (the positive control) but not the expected value."""
    asserts = 'assert echo("q7Zargument9Wk") == "q7Zexpected9Wk"\n'
    result = code_reward(fence(SPY), {"asserts": asserts})
    assert isinstance(result, Score) and result.reason == "wrong_answer"
    tail = result.details["failures"][0]["stderr_tail"]
    assert "SEEN expected=False argument=True" in tail, tail


LARGE = [
    ("a list of ten million", "def f():\n    return [0] * 10_000_000"),
    ("a 4 MB int", "def f():\n    return 1 << (8 * 4 * 1024 * 1024)"),
    (
        "nested 1000 deep",
        "def f():\n    x = []\n    for _ in range(1000):\n        x = [x]\n    return x",
    ),
    ("a list containing itself", "def f():\n    x = []\n    x.append(x)\n    return x"),
]


@pytest.mark.parametrize("program", [c[1] for c in LARGE], ids=[c[0] for c in LARGE])
def test_huge_or_cyclic_results_fail_without_reaching_the_parent(program):
    result = CodeReward(timeout=5).score(
        Sample("p", fence(program), {"asserts": "assert f() == 1"})
    )
    assert isinstance(result, Score)
    assert (result.value, result.reason) == (0.0, "result_too_large"), result.details


COLLIDING = r"""
import json, os
# forged straight onto stdout: the program never builds the set itself
_job = json.load(open("calls.json"))
_keys = [["I", format(k * (2**61 - 1), "x")] for k in range(1, 30_000)]
os.write(1, ("\n" + _job["marker"] + " " + json.dumps([0, "r", ["s", *_keys]]) + "\n").encode())
os._exit(0)
"""


def test_colliding_hashes_cost_the_program_its_deadline_not_the_parent():
    """A set of ints that all hash alike is quadratic to build; the parent never builds
    it, the test evaluator does, under its deadline."""
    reward = CodeReward(timeout=5, wall_timeout=1)
    started = time.monotonic()
    result = reward.score(Sample("p", fence(COLLIDING), {"asserts": "assert len(f()) == 3"}))
    assert isinstance(result, Score) and (result.value, result.reason) == (0.0, "timeout")
    assert "ran past" in result.details["failures"][0]["message"]
    assert time.monotonic() - started < 10


def test_a_result_fed_back_too_deep_fails_rather_than_unscores():
    """Results the tests pass back into a call are the program's data: if they are too
    large to send, that is the program's failure, not a sample to skip."""
    program = "def wrap(x):\n    for _ in range(64):\n        x = [x]\n    return x\ndef f(x):\n    return 1"
    result = code_reward(fence(program), {"asserts": "assert f(wrap(0)) == 1"})
    assert isinstance(result, Score) and (result.value, result.reason) == (0.0, "result_too_large")


@pytest.mark.parametrize(
    ("program", "asserts"),
    [
        (
            "def n():\n    return 10**6\ndef f(i):\n    return i",
            "for i in range(n()):\n    assert f(i) == i",
        ),
        (
            "def step(x):\n    return x + 1\ndef done(x):\n    return x > 50",
            "x = 0\nwhile not done(x):\n    x = step(x)",
        ),
    ],
    ids=["a million calls", "results fed back 50 rounds deep"],
)
def test_a_program_that_makes_the_tests_sprawl_fails_rather_than_unscores(program, asserts):
    result = code_reward(fence(program), {"asserts": asserts})
    assert isinstance(result, Score) and (result.value, result.reason) == (0.0, "too_many_calls")


def test_a_bare_except_in_the_tests_cannot_swallow_a_failed_call():
    program = "def f(x):\n    return object()"
    asserts = "try:\n    f(1)\nexcept BaseException:\n    pass\n"
    result = code_reward(fence(program), {"asserts": asserts})
    assert isinstance(result, Score) and result.reason == "unsupported_return"
