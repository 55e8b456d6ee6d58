"""The program the sandbox runs: load the candidate, make the requested calls, print results.

It is sent as the sandbox's main file after the codec's source (`codec.py`, stdlib only),
with `calls.json` (the calls: function names and plain-data arguments, never an expected
value) and `solution.py` (the candidate). Nothing here is trusted: the candidate shares
this process and may rewrite any of it. The parent only ever takes plain data from the
lines this prints, so the most a candidate can do is choose its own return values.

One line per call on stdout, after a newline and the run's marker:
    <marker> [index, "r", <encoded value>]
    <marker> [index, "e", <builtin exception name>, <message>]   the call raised
    <marker> [index, "x", <failure kind>, <message>]             no usable result
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # in the sandbox these come from the codec's source, sent before this
    from rewardkit.rules._asserts.codec import MAX_CHARS, CodecError, decode, dumps, encode

_MAX_MESSAGE = 300


def _builtin_exception(exc: BaseException) -> str:
    """The nearest builtin class of `exc` (a custom `class E(ValueError)` reports ValueError)."""
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:_MAX_MESSAGE]
    except BaseException:  # a candidate's __str__ may raise anything
        return ""


def _record(index: int, outcome: Any, exc: BaseException | None) -> str:
    if exc is not None:
        if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt inside a call
            return dumps([index, "x", "exited", f"{type(exc).__name__} during the call"])
        return dumps([index, "e", _builtin_exception(exc), _message(exc)])
    try:
        line = dumps([index, "r", encode(outcome, convert=True)])
    except CodecError as err:
        kind = "unsupported_return" if err.kind == "unsupported" else "result_too_large"
        return dumps([index, "x", kind, str(err)])
    except BaseException as err:  # a subclass whose conversion raises, a RecursionError
        return dumps([index, "x", "unsupported_return", _message(err)])
    if len(line) > MAX_CHARS:
        return dumps([index, "x", "result_too_large", f"{len(line)} characters encoded"])
    return line


def main() -> None:
    write = os.write
    with open("calls.json", encoding="utf-8") as f:
        job = json.load(f)
    marker = job["marker"].encode()
    calls = [(name, decode(args), decode(kwargs)) for name, args, kwargs in job["calls"]]
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
    exec(compile(source, "solution.py", "exec"), namespace)
    for index, (name, args, kwargs) in enumerate(calls):
        fn = namespace.get(name)
        if not callable(fn):
            what = "defines no" if fn is None else "has a non-callable"
            record = dumps([index, "x", "missing_function", f"the program {what} `{name}`"])
        else:
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                record = _record(index, None, exc)
            else:
                record = _record(index, value, None)
        write(1, b"\n" + marker + b" " + record.encode() + b"\n")
    for stream in (sys.stdout, sys.stderr):  # the program's prints, for failure details
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(0)  # no atexit handler or finalizer of the candidate's runs after the results


if __name__ == "__main__":
    main()
