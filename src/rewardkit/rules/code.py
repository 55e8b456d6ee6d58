r"""Code correctness: run the response's last code block against the reference's tests.

    code_reward("...```python\nprint(input()[::-1])\n```", {"tests": [{"input": "ab", "output": "ba"}]})
    -> Score(1.0, "correct", {"passed": 1, "total": 1, ...})

**Extraction.** Only the answer part is searched: the text after the last `</think>` (a
response that opens `<think>` and never closes it has no answer). The program is the *last*
fenced block tagged with the language (```python, ```py, ...) or, when there is none, the
last untagged block. Blocks tagged with anything else (```text, ```json) are not code.
No block: `Score(0.0, "no_code")`.

**Tests** come in the reference (a dict, or the same as a JSON string):

* `{"tests": [{"input": "1 2\n", "output": "3\n"}, ...]}` — stdin/stdout pairs; the APPS
  layout `{"inputs": [...], "outputs": [...]}` is accepted too. Each pair is a separate run.
* `{"asserts": "assert f(1) == 2\n..."}` or a list of assert lines (Python only): test
  code (MBPP's asserts, or HumanEval's `test` + `check(entry_point)`) judged *outside*
  the program by record/replay (`rewardkit.rules._asserts`). The sandbox runs the
  program and only answers calls: each of its functions the tests call, with the
  arguments the tests computed, returns plain data (None, bool, int, float, complex,
  str, bytes, list, tuple, set, frozenset, dict; subclasses become their base value; at
  most 1 MB each). The test code itself, with every comparison and expected value, runs
  in a trusted `rewardkit.deadline` worker against those values, record/replay rounds
  until no new call appears. What is contained: the verdict depends only on the values
  the program returned (or the builtin exceptions it raised); the test text and its
  expected values never enter the program's process or files; the program cannot
  patch builtins, `math` or anything else the tests use, and cannot reach the verdict
  by exiting, printing or forging result lines (that only chooses its own return
  values). Builtin names in the tests always mean the builtin.
  What is not: functions the tests call but do not define are the program's, so the
  program also supplies HumanEval's prompt helpers (`poly`, `encode_cyclic`) and may
  redefine them; arguments the tests pass do enter the program (HumanEval/38 passes the
  plaintext to `encode_cyclic`), and on a host without a mount namespace two rounds
  could share /tmp; in-place changes to arguments are not seen by the tests; each
  distinct call (function and arguments) runs once, so a function whose result depends
  on earlier calls (a counter) is seen once; objects
  (a class instance, a generator, `Solution().method()`) are not plain data and fail.
  Tests that use a program name other than by calling it (`f.__name__`), pass it
  non-plain arguments (a lambda), or call nothing are `Unscored("unsupported_assert")`.
  The program loads with `__name__ == "solution"` (its `if __name__ == "__main__"`
  block does not run).
* optional `"language"` overrides the reward's language for that sample.

Missing, empty or malformed tests are `Unscored("bad_reference")`: the data is wrong.

**Comparison.** Outputs match when they are equal after stripping trailing whitespace from
every line and dropping trailing blank lines (so "3\n" == "3" == "3  \n\n", but "3" !=
" 3"). With `float_tolerance`, lines are compared token by token and two numeric tokens
match within that relative/absolute tolerance. A run that exits non-zero, is killed, times
out or floods its output fails whatever it printed.

**Reward.** `mode="all"` (default): 1.0 when every test passes, else 0.0 (stops at the
first failure); `mode="fraction"`: the fraction passed. The reason is "correct" or the kind
of the first failure: wrong_answer, runtime_error, timeout, output_limit; for asserts also
asserts_not_reached (the program exited before answering), unsupported_return,
result_too_large and too_many_calls (over 20,000 distinct calls, or calls fed by results
more than 12 rounds deep); a reference's asserts count as one test. A sandbox (or test evaluator)
that could not run is `Unscored("sandbox_error")`; a host that cannot isolate code raises
`IsolationUnavailableError` (see `rewardkit.sandbox.isolation`).
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rewardkit._cpus import usable_cpus
from rewardkit.errors import ConfigError, SandboxError
from rewardkit.reward import Reward
from rewardkit.rules._asserts import AssertsOutcome, run_asserts
from rewardkit.sandbox import ExecResult, SandboxLimits, run_code
from rewardkit.sandbox.languages import LANGUAGES, Language, get_language, language_for_fence
from rewardkit.text import answer_part
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = [
    "CodeReward",
    "CodeTests",
    "TestOutcome",
    "code_reward",
    "extract_code",
    "find_code_blocks",
    "outputs_match",
    "parse_tests",
    "run_tests",
]

Mode = Literal["all", "fraction"]
_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\s`]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
# Failure details keep only the end of stderr: the traceback's last lines say what broke.
_TAIL_CHARS = 1000
# ... and only the first few failures: details travel with every sample's result.
_MAX_FAILURES = 3


# ---------------------------------------------------------------------------- extraction


def find_code_blocks(text: str) -> list[tuple[str, str]]:
    """Every closed ``` fence as (lower-cased tag, code), in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def extract_code(text: str, language: str = "python") -> str | None:
    """The program to run: the last block tagged `language`, else the last untagged one."""
    answer = answer_part(text)
    if answer is None:
        return None
    lang = get_language(language)
    tagged, untagged = None, None
    for tag, code in find_code_blocks(answer):
        if not tag:
            untagged = code
        elif language_for_fence(tag) is lang:
            tagged = code
    chosen = tagged if tagged is not None else untagged
    return chosen if chosen is not None and chosen.strip() else None


# ---------------------------------------------------------------------------- references


class IOTest(BaseModel):
    """One stdin/stdout test."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(default="", description="Text fed to the program's stdin.")
    output: str = Field(description="Expected stdout (compared as the module docstring says).")


class CodeTests(BaseModel):
    """The tests a code reference carries: stdin/stdout pairs or Python asserts."""

    model_config = ConfigDict(extra="forbid")

    tests: list[IOTest] | None = Field(default=None, description="stdin/stdout pairs.")
    inputs: list[str] | None = Field(default=None, description="APPS layout: stdin of each test.")
    outputs: list[str] | None = Field(default=None, description="APPS layout: expected stdout.")
    asserts: str | list[str] | None = Field(
        default=None, description="Python assert statements run after the program."
    )
    language: str | None = Field(default=None, description="Overrides the reward's language.")

    @model_validator(mode="after")
    def _one_kind(self) -> CodeTests:
        if (self.inputs is None) != (self.outputs is None):
            raise ValueError("`inputs` and `outputs` go together")
        if self.inputs is not None and self.outputs is not None:
            if len(self.inputs) != len(self.outputs):
                raise ValueError(f"{len(self.inputs)} inputs but {len(self.outputs)} outputs")
            if self.tests is not None:
                raise ValueError("give either `tests` or `inputs`/`outputs`, not both")
            self.tests = [
                IOTest(input=i, output=o) for i, o in zip(self.inputs, self.outputs, strict=True)
            ]
            self.inputs = self.outputs = None
        if isinstance(self.asserts, list):
            self.asserts = "\n".join(self.asserts)
        has_io = bool(self.tests)
        has_asserts = bool(self.asserts and self.asserts.strip())
        if has_io == has_asserts:
            raise ValueError(
                "a code reference needs non-empty `tests` (stdin/stdout pairs) or `asserts`, "
                "and not both"
            )
        if self.language is not None and self.language not in LANGUAGES:
            raise ValueError(f"unknown language {self.language!r}; choose one of {list(LANGUAGES)}")
        return self

    @property
    def assert_source(self) -> str:
        """The asserts as one Python source ("" for stdin/stdout tests)."""
        if isinstance(self.asserts, list):
            return "\n".join(self.asserts)
        return self.asserts or ""


def parse_tests(reference: Any) -> CodeTests | str:
    """The reference's tests, or a message saying what is wrong with it."""
    if isinstance(reference, CodeTests):
        return reference
    if isinstance(reference, str | bytes):
        try:
            reference = json.loads(reference)
        except ValueError as exc:
            return f"reference is a string but not JSON: {exc}"
    if not isinstance(reference, Mapping):
        return (
            f"reference must be a mapping with `tests` or `asserts`, got {type(reference).__name__}"
        )
    try:
        return CodeTests.model_validate(dict(reference))
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'reference'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )


# ---------------------------------------------------------------------------- comparison


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _float(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def outputs_match(actual: str, expected: str, float_tolerance: float | None = None) -> bool:
    """Equal after per-line trailing-whitespace strip and dropping trailing blank lines."""
    got, want = _lines(actual), _lines(expected)
    if float_tolerance is None:
        return got == want
    if len(got) != len(want):
        return False
    for g_line, w_line in zip(got, want, strict=True):
        g_tokens, w_tokens = g_line.split(), w_line.split()
        if len(g_tokens) != len(w_tokens):
            return False
        for g, w in zip(g_tokens, w_tokens, strict=True):
            if g == w:
                continue
            gf, wf = _float(g), _float(w)
            if gf is None or wf is None:
                return False
            if not math.isclose(gf, wf, rel_tol=float_tolerance, abs_tol=float_tolerance):
                return False
    return True


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """How a program did on a reference's tests."""

    passed: int
    total: int
    #: per test run, in order: "passed" or a failure kind
    statuses: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    isolation: tuple[str, ...] = ()
    sandbox_error: str | None = None
    #: (reason, message) when the tests cannot judge this program at all
    unscored: tuple[str, str] | None = None

    @property
    def first_failure(self) -> str | None:
        return next((s for s in self.statuses if s != "passed"), None)


def _failure_kind(result: ExecResult, limits: SandboxLimits) -> str | None:
    """None if the run ended cleanly; else why it failed. Exit code 0 is necessary, never sufficient."""
    if result.timed_out:
        return "timeout"
    if result.output_truncated:
        return "output_limit"
    if result.signal == signal.SIGXCPU:
        return "timeout"  # the kernel's signal for the CPU rlimit
    if result.signal == signal.SIGKILL:
        # the hard CPU rlimit, a second later (rusage undercounts CPU time a little)
        cpu = result.details.get("cpu_seconds") or 0.0
        if cpu >= limits.cpu_seconds * 0.8:
            return "timeout"
    if result.signal is not None or result.exit_code != 0:
        return "runtime_error"
    return None


def _failure_record(index: int, kind: str, result: ExecResult) -> dict[str, Any]:
    return {
        "test": index,
        "status": kind,
        "exit": result.status,
        "stderr_tail": result.stderr[-_TAIL_CHARS:],
    }


def _assert_outcome(out: AssertsOutcome) -> TestOutcome:
    if out.status == "error":
        return TestOutcome(
            0, 1, ["error"], isolation=out.isolation, sandbox_error=out.sandbox_error
        )
    if out.status in ("unsupported", "bad_reference"):
        reason = "unsupported_assert" if out.status == "unsupported" else "bad_reference"
        return TestOutcome(0, 1, isolation=out.isolation, unscored=(reason, out.message))
    if out.status == "passed":
        return TestOutcome(1, 1, ["passed"], isolation=out.isolation)
    record = {
        "test": 0,
        "status": out.status,
        "message": out.message,
        "calls": out.calls,
        "phases": out.phases,
        **out.run,
    }
    return TestOutcome(0, 1, [out.status], [record], out.isolation)


def run_tests(
    code: str,
    tests: CodeTests,
    *,
    language: str = "python",
    limits: SandboxLimits | None = None,
    mode: Mode = "all",
    float_tolerance: float | None = None,
    allow_unisolated: bool | None = None,
) -> TestOutcome:
    """Run `code` on every test (stopping at the first failure in mode "all").

    `allow_unisolated`: None defers to REWARDKIT_ALLOW_UNISOLATED (see the sandbox).
    """
    limits = limits or SandboxLimits()
    lang: Language = get_language(tests.language or language)
    if tests.asserts:
        if lang.name != "python":
            # The reference cannot judge this program: a typed reason, not a sandbox failure.
            message = f"asserts are Python; this sample's language is {lang.name}"
            return TestOutcome(0, 1, unscored=("bad_reference", message))
        return _assert_outcome(run_asserts(code, tests.assert_source, limits, allow_unisolated))

    io_tests = tests.tests or []
    statuses: list[str] = []
    failures: list[dict[str, Any]] = []
    isolation: tuple[str, ...] = ()
    for i, test in enumerate(io_tests):
        result = run_code(
            code,
            language=lang.name,
            stdin=test.input,
            limits=limits,
            allow_unisolated=allow_unisolated,
        )
        isolation = result.isolation
        if result.error is not None:
            return TestOutcome(
                0, len(io_tests), [*statuses, "error"], failures, isolation, result.error
            )
        kind = _failure_kind(result, limits)
        if kind is None and not outputs_match(result.stdout, test.output, float_tolerance):
            kind = "wrong_answer"
        if kind is None:
            statuses.append("passed")
            continue
        statuses.append(kind)
        if len(failures) < _MAX_FAILURES:
            record = _failure_record(i, kind, result)
            if kind == "wrong_answer":
                record["stdout_head"] = result.stdout[:_TAIL_CHARS]
            failures.append(record)
        if mode == "all":
            break
    passed = statuses.count("passed")
    return TestOutcome(passed, len(io_tests), statuses, failures, isolation)


def code_reward(
    response: str,
    reference: Any,
    *,
    language: str = "python",
    limits: SandboxLimits | None = None,
    mode: Mode = "all",
    float_tolerance: float | None = None,
    allow_unisolated: bool | None = None,
) -> RewardResult:
    """Score one response against a code reference (see the module docstring)."""
    tests = parse_tests(reference)
    if isinstance(tests, str):
        return Unscored("bad_reference", tests)
    lang = tests.language or language
    code = extract_code(response, lang)
    if code is None:
        return Score(0.0, "no_code", {"language": lang})
    try:
        outcome = run_tests(
            code,
            tests,
            language=lang,
            limits=limits,
            mode=mode,
            float_tolerance=float_tolerance,
            allow_unisolated=allow_unisolated,
        )
    except SandboxError as exc:
        if type(exc) is not SandboxError:
            raise  # IsolationUnavailableError: a host problem the user must see
        return Unscored("sandbox_error", str(exc), raw=code)
    if outcome.unscored is not None:
        return Unscored(outcome.unscored[0], outcome.unscored[1], raw=code)
    if outcome.sandbox_error is not None:
        return Unscored("sandbox_error", outcome.sandbox_error, raw=code)
    details: dict[str, Any] = {
        "passed": outcome.passed,
        "total": outcome.total,
        "mode": mode,
        "language": lang,
        "isolation": list(outcome.isolation),
    }
    if outcome.failures:
        details["failures"] = outcome.failures
    if mode == "all" and len(outcome.statuses) < outcome.total:
        details["stopped_early"] = True
    all_passed = outcome.passed == outcome.total
    value = (1.0 if all_passed else 0.0) if mode == "all" else outcome.passed / outcome.total
    return Score(
        value, "correct" if all_passed else (outcome.first_failure or "wrong_answer"), details
    )


# ---------------------------------------------------------------------------- the reward


class CodeReward(Reward):
    """Runs the response's code against the reference's tests in the sandbox; 0..1.

    Options: `mode` ("all" | "fraction"), `timeout` (CPU seconds per test run),
    `wall_timeout` (wall-clock deadline per run; default 2 x timeout + 1 s, so a loaded
    machine does not fail correct programs while a sleeping one is still stopped), `memory_mb`, `language` (default for samples whose reference does
    not name one), `float_tolerance`, `allow_unisolated` (run even where the network
    cannot be cut off; also enabled by REWARDKIT_ALLOW_UNISOLATED=1), `max_parallel`
    (concurrent programs in `score_batch`; default: the CPU count), `max_processes`,
    `max_output_bytes`.
    """

    name: ClassVar[str] = "code"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(
        self,
        mode: Mode = "all",
        timeout: float = 5.0,
        wall_timeout: float | None = None,
        memory_mb: int = 1024,
        language: str = "python",
        float_tolerance: float | None = None,
        allow_unisolated: bool = False,
        max_parallel: int | None = None,
        max_processes: int = 64,
        max_output_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        if mode not in get_args(Mode):
            raise ConfigError(f"code: mode must be one of {list(get_args(Mode))}, got {mode!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(
                f"code: timeout must be a positive number of seconds, got {timeout!r}"
            )
        if float_tolerance is not None and (
            not isinstance(float_tolerance, int | float) or float_tolerance < 0
        ):
            raise ConfigError(
                f"code: float_tolerance must be a non-negative number, got {float_tolerance!r}"
            )
        if wall_timeout is None:
            wall_timeout = 2 * timeout + 1
        if (
            isinstance(wall_timeout, bool)
            or not isinstance(wall_timeout, int | float)
            or wall_timeout <= 0
        ):
            raise ConfigError(
                f"code: wall_timeout must be a positive number of seconds, got {wall_timeout!r}"
            )
        get_language(language)  # raises ConfigError naming the choices
        cpus = usable_cpus()
        if max_parallel is None:
            max_parallel = cpus
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
            raise ConfigError(
                f"code: max_parallel must be a positive integer, got {max_parallel!r}"
            )
        self.mode: Mode = mode
        self.language = language
        self.float_tolerance = float_tolerance
        self.allow_unisolated = allow_unisolated
        self.max_parallel = max_parallel
        # SandboxLimits validates the rest and raises ConfigError naming the field
        self.limits = SandboxLimits(
            cpu_seconds=float(timeout),
            wall_seconds=float(wall_timeout),
            memory_mb=memory_mb,
            max_processes=max_processes,
            max_output_bytes=max_output_bytes,
        )

    def _allow(self) -> bool | None:
        # None lets the sandbox consult REWARDKIT_ALLOW_UNISOLATED at run time
        return True if self.allow_unisolated else None

    def score(self, sample: Sample) -> RewardResult:
        return code_reward(
            sample.response,
            sample.reference,
            language=self.language,
            limits=self.limits,
            mode=self.mode,
            float_tolerance=self.float_tolerance,
            allow_unisolated=self._allow(),
        )

    def score_batch(self, samples: Sequence[Sample]) -> list[RewardResult]:
        """Samples in parallel, at most `max_parallel` programs at a time (one subprocess each)."""
        if len(samples) <= 1 or self.max_parallel == 1:
            return [self.score(s) for s in samples]
        with ThreadPoolExecutor(
            min(self.max_parallel, len(samples)), thread_name_prefix="rewardkit-code"
        ) as pool:
            return list(pool.map(self.score, samples))
