"""The trusted side: run the reference's test code with the program's functions as stand-ins.

Runs in a `rewardkit.deadline` worker (a process the candidate never touches, killed past
its deadline). Every name the test code reads but never binds (and that is no builtin)
is the program's: it is bound to a `CandidateFunction`, which never runs any of the
program's code. A call to it looks up the call's result, which the sandbox computed
earlier, and returns a fresh copy built from plain data.

One `evaluate` is one phase of record/replay:

1. *record*: the test code runs with every `assert` made harmless (the test expression is
   evaluated, whatever it raises is ignored). A call whose result is not known yet
   returns a `Placeholder`, which absorbs arithmetic and comparisons but refuses to become
   a plain value (bool, str, int, iteration, hashing all raise), so a placeholder can
   neither leak an expected value into a recorded call nor steer a loop. Calls whose
   arguments are plain data are recorded; the parent runs them in the sandbox and calls
   `evaluate` again with their results.
2. *strict*: once a record run finds no new call, the unmodified test code runs against
   the known results. Its outcome is the verdict: passed when it ends (or raises
   SystemExit(0), as a unittest runner may), wrong_answer on AssertionError or another
   exit status, runtime_error on any other exception, or the failure of a call.

A form that cannot be checked this way (a program name used other than by calling it,
arguments that are not plain data) raises `UnsupportedAssert`, which test code cannot
catch (it is a BaseException, and the state remembers it even if a bare `except:` does).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import random
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Literal

from rewardkit.rules._asserts.codec import CodecError, decode, dumps, encode

TEST_FILENAME = "<tests>"
#: distinct calls of the program per sample
MAX_CALLS = 20_000
Mode = Literal["record", "strict"]
#: a call's known result: ("r", encoded value) | ("e", exception name, message) | ("x", failure kind, message)
Record = tuple[Any, ...]


class UnsupportedAssert(BaseException):
    """The test code uses the program in a way that cannot be checked from outside it."""


class _Pending(BaseException):
    """A placeholder was asked for a plain value (record mode only)."""


class _NeedCall(BaseException):
    """Strict mode met a call with no known result."""


class _CallFailed(BaseException):
    """A call of the program has no usable result (crash, unsupported return, ...)."""


class CandidateError(Exception):
    """Replays an exception the program raised whose class is not a builtin one."""


@dataclass
class _State:
    mode: Mode
    known: Mapping[str, Record]
    new: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)
    calls: int = 0
    failure: tuple[str, str] | None = None
    unsupported: str | None = None
    need: bool = False
    #: a failure that ends the evaluation in any mode
    fatal: bool = False


def _pending(*_: Any, **__: Any) -> Any:
    raise _Pending


class Placeholder:
    """The result of a call not run yet: absorbs operators, refuses to become a value."""

    __slots__ = ()

    def _absorb(self, *_: Any, **__: Any) -> Placeholder:
        return self


_ABSORBING = (
    "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow "
    "matmul rmatmul lshift rlshift rshift rrshift and rand or ror xor rxor divmod rdivmod "
    "neg pos abs invert round trunc floor ceil eq ne lt le gt ge getitem call getattr"
)
_REFUSING = "bool len iter index int float complex hash contains str repr format bytes reversed"
for _op in _ABSORBING.split():
    setattr(Placeholder, f"__{_op}__", Placeholder._absorb)
for _op in [*_REFUSING.split(), "setattr"]:
    setattr(Placeholder, f"__{_op}__", _pending)


class CandidateFunction:
    """Stands for the program's function `name` in the test code."""

    __slots__ = ("_rk_name", "_rk_state")

    def __init__(self, name: str, state: _State) -> None:
        object.__setattr__(self, "_rk_name", name)
        object.__setattr__(self, "_rk_state", state)

    def __repr__(self) -> str:
        return f"<the program's {self._rk_name}>"

    def __getattr__(self, attr: str) -> Any:
        self._rk_state.unsupported = (
            f"the tests read `{self._rk_name}.{attr}`; only calls of the program's "
            "functions can be checked"
        )
        raise UnsupportedAssert(self._rk_state.unsupported)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name, state = self._rk_name, self._rk_state
        if state.fatal:  # decided; the tests swallowed the first raise and went on
            raise _CallFailed(state.failure[1] if state.failure else "")
        state.calls += 1
        try:
            enc_args = encode(list(args), pending=Placeholder)
            enc_kwargs = encode(kwargs, pending=Placeholder)
        except CodecError as exc:
            if exc.kind == "pending":
                return Placeholder()
            if exc.kind != "unsupported":  # built from the program's own (huge) results
                state.failure = state.failure or ("result_too_large", f"{name}(...): {exc}")
                state.fatal = True
                raise _CallFailed(state.failure[1]) from None
            state.unsupported = f"`{name}` is called with an argument that is not plain data: {exc}"
            raise UnsupportedAssert(state.unsupported) from None
        key = dumps([name, enc_args, enc_kwargs])
        record = state.known.get(key)
        if record is None:
            state.new.setdefault(key, (name, enc_args, enc_kwargs))
            if len(state.new) + len(state.known) > MAX_CALLS:
                # a failure, not unscored: the count can follow the program's results
                # (`for i in range(f(x))`), and a skipped sample is something to aim for
                message = f"the tests made more than {MAX_CALLS} distinct calls"
                state.failure, state.fatal = ("too_many_calls", message), True
                raise _CallFailed(message)
            if state.mode == "strict":
                state.need = True
                raise _NeedCall
            return Placeholder()
        tag = record[0]
        if tag == "r":
            return decode(record[1])
        if tag == "e":
            raise _replayed(record[1], record[2])
        if state.mode == "record":
            return Placeholder()
        if state.failure is None:
            state.failure = (record[1], f"{name}(...): {record[2]}")
        raise _CallFailed(state.failure[1])


#: never replayed as themselves: raised inside `map()` or `zip()` they would end the
#: iteration quietly, and `all(map(f, xs))` would pass on an empty run
_CONTROL_FLOW = (StopIteration, StopAsyncIteration)


def _replayed(name: str, message: str) -> Exception:
    """The exception the program raised, rebuilt from its builtin class name."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, _CONTROL_FLOW):
        try:
            return cls(message)
        except Exception:
            pass
    return CandidateError(f"{name}: {message}")


class _HarmlessAsserts(ast.NodeTransformer):
    """`assert t, m` -> `try: t / except (unsupported, fatal): raise / except BaseException: pass`."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        reraise = ast.ExceptHandler(
            type=ast.Name("__rk_unsupported__", ast.Load()), name=None, body=[ast.Raise()]
        )
        ignore = ast.ExceptHandler(
            type=ast.Name("__rk_any__", ast.Load()), name=None, body=[ast.Pass()]
        )
        probe = ast.Try(
            body=[ast.Expr(node.test)], handlers=[reraise, ignore], orelse=[], finalbody=[]
        )
        return ast.copy_location(probe, node)


def compile_tests(source: str, mode: Mode) -> CodeType:
    tree = ast.parse(source, TEST_FILENAME)
    if mode == "record":
        tree = ast.fix_missing_locations(_HarmlessAsserts().visit(tree))
    return compile(tree, TEST_FILENAME, "exec")


def _where(exc: BaseException, source: str) -> str:
    """`line N: <source line>` of the innermost test-code frame `exc` passed through."""
    lines = source.splitlines()
    lineno = None
    for frame, n in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == TEST_FILENAME:
            lineno = n
    if lineno is None or not 0 < lineno <= len(lines):
        return ""
    return f"line {lineno}: {lines[lineno - 1].strip()[:300]}"


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


_DISCARD = _Discard()


def _run(
    source: str, mode: Mode, names: Sequence[str], modules: Sequence[str], state: _State
) -> dict[str, Any]:
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__builtins__": builtins,
        "__rk_unsupported__": (UnsupportedAssert, _CallFailed),
        "__rk_any__": BaseException,
    }
    for name in modules:
        namespace[name] = importlib.import_module(name)
    for name in names:
        namespace[name] = CandidateFunction(name, state)
    random.seed(0)  # tests that draw random inputs must draw the same ones in every phase
    limit = sys.getrecursionlimit()
    verdict: dict[str, Any] = {"status": "verdict", "kind": "passed", "message": ""}
    try:
        # the tests' prints must not reach the worker's stdout (a CLI's JSONL output)
        with contextlib.redirect_stdout(_DISCARD), contextlib.redirect_stderr(_DISCARD):
            exec(compile_tests(source, mode), namespace)
    except (UnsupportedAssert, _NeedCall, _CallFailed, _Pending):
        pass  # the state says which
    except SystemExit as exc:  # only the test code can raise it here (`unittest.main()`)
        if exc.code not in (None, 0):
            verdict = {
                "status": "verdict",
                "kind": "wrong_answer",
                "message": f"the tests exited with status {exc.code!r}",
            }
    except AssertionError as exc:
        detail = str(exc)[:300]
        verdict = {
            "status": "verdict",
            "kind": "wrong_answer",
            "message": _where(exc, source) + (f" ({detail})" if detail else ""),
        }
    except BaseException as exc:
        where = _where(exc, source)
        verdict = {
            "status": "verdict",
            "kind": "runtime_error",
            "message": f"{where}: {type(exc).__name__}: {str(exc)[:300]}"
            if where
            else f"{type(exc).__name__}: {str(exc)[:300]}",
        }
    finally:
        sys.setrecursionlimit(limit)
    if state.unsupported is not None:
        return {"status": "unsupported", "message": state.unsupported}
    if state.fatal and state.failure is not None:
        kind, message = state.failure
        return {"status": "verdict", "kind": kind, "message": message, "final": True}
    if state.need or (mode == "record" and state.new):
        return {"status": "need", "calls": [[k, *v] for k, v in state.new.items()]}
    if state.failure is not None:
        return {"status": "verdict", "kind": state.failure[0], "message": state.failure[1]}
    return verdict


def evaluate(
    source: str, names: Sequence[str], modules: Sequence[str], known: Mapping[str, Record]
) -> dict[str, Any]:
    """One phase: the calls still to run (`status` "need"), or the verdict, or why not.

    Returns plain data: {"status": "need", "calls": [[key, name, args, kwargs], ...]},
    {"status": "verdict", "kind": "passed" | failure kind, "message", "calls": n} or
    {"status": "unsupported", "message"}.
    """
    state = _State("record", known)
    report = _run(source, "record", names, modules, state)
    if report["status"] != "verdict":
        return report
    if report.pop("final", False):  # a fatal failure: no strict run can change it
        report["calls"] = state.calls
        return report
    state = _State("strict", known)
    report = _run(source, "strict", names, modules, state)
    report.pop("final", None)
    if report["status"] == "verdict":
        report["calls"] = state.calls
    return report
