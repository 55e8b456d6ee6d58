"""The parent's loop: evaluate the test code, run the calls it needs in the sandbox, repeat."""

from __future__ import annotations

import json
import secrets
import signal
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rewardkit.deadline import (
    DeadlineExceeded,
    DeadlinePool,
    PoolClosed,
    WorkerCrashed,
    shared_pool,
)
from rewardkit.rules._asserts.codec import CodecError, loads, validate
from rewardkit.rules._asserts.evaluator import MAX_CALLS, Record, evaluate
from rewardkit.rules._asserts.names import free_names
from rewardkit.sandbox import ExecResult, SandboxLimits, run_code

#: record/replay rounds before a test is declared unsupported (a call whose arguments come
#: from the result of another call needs one round per level)
MAX_PHASES = 12
_TAIL_CHARS = 1000
#: the sandbox's words for a call without a result -> the failure reason it scores as
_SANDBOX_KINDS = {
    "unsupported_return": "unsupported_return",
    "result_too_large": "result_too_large",
    "missing_function": "runtime_error",
    "exited": "asserts_not_reached",
}


@dataclass(frozen=True, slots=True)
class AssertsOutcome:
    """How the program did on one reference's asserts.

    `status`: "passed"; a failure kind (wrong_answer, runtime_error, timeout, output_limit,
    asserts_not_reached, unsupported_return, result_too_large, too_many_calls);
    "unsupported" (the test
    cannot be checked from outside the program: unscored) or "bad_reference".
    """

    status: str
    message: str = ""
    calls: int = 0
    phases: int = 0
    isolation: tuple[str, ...] = ()
    sandbox_error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)


@cache
def sandbox_program() -> str:
    """The sandbox's main file: the codec, then the caller (one self-contained script)."""
    here = Path(__file__).parent
    codec = (here / "codec.py").read_text(encoding="utf-8")
    main = (here / "sandbox_main.py").read_text(encoding="utf-8")
    main = main.replace("from __future__ import annotations\n", "", 1)
    return f"{codec}\n\n# ---- sandbox_main.py\n{main}"


def _run_kind(result: ExecResult, limits: SandboxLimits) -> str:
    """Why a run that left calls without a result ended."""
    if result.timed_out or result.signal == signal.SIGXCPU:
        return "timeout"
    if result.output_truncated:
        return "output_limit"
    if result.signal == signal.SIGKILL:
        cpu = result.details.get("cpu_seconds") or 0.0
        if cpu >= limits.cpu_seconds * 0.8:
            return "timeout"  # the hard CPU rlimit, a second after the soft one
    if result.signal is not None or result.exit_code != 0:
        return "runtime_error"
    return "asserts_not_reached"  # exited cleanly before answering every call


def _parse_line(payload: str, count: int) -> tuple[int, Record] | None:
    """One result line from the sandbox, validated; None when it is not one of ours."""
    try:
        data = loads(payload)
    except CodecError:
        return None
    if not (isinstance(data, list) and len(data) >= 3 and type(data[0]) is int):
        return None
    index, tag = data[0], data[1]
    if not 0 <= index < count:
        return None
    if tag == "r" and len(data) == 3:
        try:
            validate(data[2])
        except CodecError as exc:
            return index, ("x", "result_too_large", f"unreadable result: {exc}")
        return index, ("r", data[2])
    if tag in ("e", "x") and len(data) == 4 and all(type(x) is str for x in data[2:]):
        if tag == "x":
            if data[2] not in _SANDBOX_KINDS:
                return None
            return index, ("x", _SANDBOX_KINDS[data[2]], data[3][:300])
        return index, (tag, data[2][:100], data[3][:300])
    return None


def _run_calls(
    code: str,
    calls: list[list[Any]],
    limits: SandboxLimits,
    allow: bool | None,
) -> tuple[dict[int, Record], ExecResult]:
    marker = secrets.token_hex(12)
    job = {"marker": marker, "calls": [[name, args, kwargs] for _, name, args, kwargs in calls]}
    files = {"solution.py": code, "calls.json": json.dumps(job)}
    result = run_code(
        sandbox_program(), language="python", limits=limits, files=files, allow_unisolated=allow
    )
    records: dict[int, Record] = {}
    prefix = marker + " "
    for line in result.stdout.split("\n"):
        if line.startswith(prefix):
            parsed = _parse_line(line[len(prefix) :], len(calls))
            if parsed is not None and parsed[0] not in records:
                records[parsed[0]] = parsed[1]
    return records, result


def _run_details(result: ExecResult) -> dict[str, Any]:
    return {"exit": result.status, "stderr_tail": result.stderr[-_TAIL_CHARS:]}


def run_asserts(
    code: str,
    source: str,
    limits: SandboxLimits,
    allow_unisolated: bool | None = None,
    pool: DeadlinePool | None = None,
) -> AssertsOutcome:
    """Check `code` against the assert test code `source` (see `rewardkit.rules._asserts`)."""
    try:
        names, modules = free_names(source)
    except SyntaxError as exc:
        return AssertsOutcome("bad_reference", f"the asserts do not parse: {exc}")
    if not names:
        return AssertsOutcome(
            "unsupported", "the asserts call no function of the program, so they check nothing"
        )
    pool = pool or shared_pool()
    known: dict[str, Record] = {}
    isolation: tuple[str, ...] = ()
    run: dict[str, Any] = {}
    for phase in range(1, MAX_PHASES + 1):
        try:
            report = pool.run(evaluate, source, names, modules, known, timeout=limits.wall_seconds)
        except DeadlineExceeded:
            return AssertsOutcome(
                "timeout",
                f"the tests ran past {limits.wall_seconds:g} s on the program's results",
                len(known),
                phase,
                isolation,
                run=run,
            )
        except WorkerCrashed as exc:
            # only the program's results vary between runs of trusted test code: a worker
            # that dies on them (out of memory on a huge value) is the program's failure,
            # never a skipped sample a policy could learn to aim for
            return AssertsOutcome(
                "runtime_error",
                f"the tests crashed on the program's results: {exc}",
                len(known),
                phase,
                isolation,
                run=run,
            )
        except PoolClosed as exc:
            return AssertsOutcome("error", sandbox_error=f"the test evaluator failed: {exc}")
        status = report["status"]
        if status == "verdict":
            if report["kind"] == "passed" and report["calls"] == 0:
                return AssertsOutcome(
                    "unsupported", "the asserts never called the program", 0, phase, isolation
                )
            return AssertsOutcome(
                report["kind"], report["message"], len(known), phase, isolation, run=run
            )
        if status == "unsupported":
            return AssertsOutcome("unsupported", report["message"], len(known), phase, isolation)
        calls = report["calls"]
        if len(known) + len(calls) > MAX_CALLS:
            message = f"the tests made more than {MAX_CALLS} distinct calls"
            return AssertsOutcome("too_many_calls", message, len(known), phase, isolation, run=run)
        records, result = _run_calls(code, calls, limits, allow_unisolated)
        isolation = result.isolation
        if result.error is not None:
            return AssertsOutcome("error", sandbox_error=result.error, isolation=isolation)
        run = _run_details(result)
        missing = ("x", _run_kind(result, limits), f"no result: the run ended ({result.status})")
        for i, (key, *_) in enumerate(calls):
            known[key] = records.get(i, missing)
    # a failure like MAX_CALLS: how deep calls feed on results can follow the program
    return AssertsOutcome(
        "too_many_calls",
        f"the calls still depended on other calls' results after {MAX_PHASES} rounds",
        len(known),
        MAX_PHASES,
        isolation,
        run=run,
    )
