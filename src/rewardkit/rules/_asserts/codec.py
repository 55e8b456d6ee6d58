"""Plain data as tagged JSON: the only form in which values cross the sandbox boundary.

This file is also sent verbatim into the sandbox (it imports only the standard library), so
the candidate's side and the trusted side speak one format. Trusting it there would be
pointless: the candidate controls its own process and can write anything. What makes the
boundary safe is `decode` on the trusted side, which builds nothing but builtin values
(None, bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict) and
refuses anything malformed, too deep or too large.

    None, True, "s", 3    -> themselves (ints only while |n| < 2**53)
    12345678901234567890  -> ["I", "ab54a98ceb1f0ad2"]        (hex: no digit limit)
    1.5, nan, -inf        -> ["f", "0x1.8000000000000p+0"]     (float.hex: exact)
    1+2j                  -> ["c", real.hex(), imag.hex()]
    b"ab"                 -> ["b", "6162"]
    [..] (..) {..} frozenset -> ["l", ...], ["t", ...], ["s", ...], ["S", ...]
    {k: v}                -> ["d", [k, v], ...]
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
MAX_NODES = 1_000_000
#: one call's result line, as the sandbox writes it and the parent reads it
MAX_CHARS = 1024 * 1024
_SAFE_INT = 2**53
_CONTAINERS: dict[type, str] = {list: "l", tuple: "t", set: "s", frozenset: "S"}
_BUILD: dict[str, Any] = {"l": list, "t": tuple, "s": set, "S": frozenset}


class CodecError(ValueError):
    """A value that is not plain data, or an encoding that is not ours.

    `kind`: "unsupported" (not plain data), "too_large", "too_deep", "malformed", or
    "pending" (a placeholder for a result not known yet; see the evaluator).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _plain(value: Any, convert: bool) -> Any:
    """The builtin value behind `value`, or `value` itself when it has none.

    With `convert`, instances of subclasses of the builtin types become the base value (a
    numpy scalar becomes its Python scalar): whatever the subclass overrides (`__eq__`,
    `__hash__`) is dropped, so only the value crosses.
    """
    kind = type(value)
    if not convert or kind in (
        int,
        float,
        str,
        bytes,
        bool,
        complex,
        list,
        tuple,
        set,
        frozenset,
        dict,
    ):
        return value
    if kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _plain(value.item(), False)
    bases: tuple[Any, ...] = (int, float, complex, str, bytes, list, tuple, frozenset, set, dict)
    for base in bases:
        if isinstance(value, base):
            return base(value)
    return value


def encode(
    value: Any,
    *,
    convert: bool = False,
    pending: type | None = None,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """`value` as JSON-able tagged data; raises CodecError when it is not plain data."""
    budget = [max_nodes]

    def enc(v: Any, depth: int) -> Any:
        if depth > max_depth:
            raise CodecError("too_deep", f"nested deeper than {max_depth} levels")
        budget[0] -= 1
        if budget[0] < 0:
            raise CodecError("too_large", f"more than {max_nodes} values")
        if pending is not None and isinstance(v, pending):
            raise CodecError("pending", "depends on a result not known yet")
        v = _plain(v, convert)
        kind = type(v)
        if v is None or kind is bool or kind is str:
            return v
        if kind is int:
            return v if -_SAFE_INT < v < _SAFE_INT else ["I", format(v, "x")]
        if kind is float:
            return ["f", v.hex()]
        if kind is complex:
            return ["c", v.real.hex(), v.imag.hex()]
        if kind is bytes:
            return ["b", v.hex()]
        tag = _CONTAINERS.get(kind)
        if tag is not None:
            return [tag, *(enc(item, depth + 1) for item in list(v))]
        if kind is dict:
            return ["d", *([enc(k, depth + 1), enc(x, depth + 1)] for k, x in list(v.items()))]
        raise CodecError("unsupported", f"a {kind.__name__} is not plain data")

    return enc(value, 0)


def dumps(encoded: Any) -> str:
    """One line of JSON (ASCII: lone surrogates and control characters are escaped)."""
    return json.dumps(encoded, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def decode(data: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """The builtin value an `encode` result stands for; CodecError("malformed") otherwise."""

    def dec(d: Any, depth: int) -> Any:
        if depth > max_depth:
            raise CodecError("too_deep", f"nested deeper than {max_depth} levels")
        kind = type(d)
        if d is None or kind is bool or kind is str:
            return d
        if kind is int:
            if not -_SAFE_INT < d < _SAFE_INT:
                raise CodecError("malformed", "a large int must be tagged")
            return d
        if kind is not list or not d or type(d[0]) is not str:
            raise CodecError("malformed", f"unexpected {kind.__name__} in encoded data")
        tag, rest = d[0], d[1:]
        try:
            if tag in ("I", "f", "b") and len(rest) == 1 and type(rest[0]) is str:
                if tag == "I":
                    return int(rest[0], 16)
                return float.fromhex(rest[0]) if tag == "f" else bytes.fromhex(rest[0])
            if tag == "c" and len(rest) == 2 and all(type(x) is str for x in rest):
                return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
            if tag in _BUILD:
                return _BUILD[tag](dec(x, depth + 1) for x in rest)
            if tag == "d" and all(type(p) is list and len(p) == 2 for p in rest):
                return {dec(k, depth + 1): dec(x, depth + 1) for k, x in rest}
        except (ValueError, TypeError, OverflowError) as exc:  # bad hex, unhashable key
            if isinstance(exc, CodecError):
                raise
            raise CodecError("malformed", f"bad {tag!r} value: {exc}") from None
        raise CodecError("malformed", f"unknown tag {tag!r}")

    return dec(data, 0)


_HEX = frozenset("0123456789abcdefABCDEF")


def validate(data: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise CodecError unless `decode(data)` would succeed, without building anything.

    For the parent, which must not hash what the program sent: a set of ints that all
    hash alike takes quadratic time to build. `decode` runs later, under a deadline.
    """

    def hashable(d: Any) -> bool:
        if type(d) is not list:
            return True
        if d[0] == "t":
            return all(hashable(x) for x in d[1:])
        return d[0] in ("I", "f", "c", "b", "S")

    def check(d: Any, depth: int) -> None:
        if depth > max_depth:
            raise CodecError("too_deep", f"nested deeper than {max_depth} levels")
        kind = type(d)
        if d is None or kind is bool or kind is str:
            return
        if kind is int:
            if not -_SAFE_INT < d < _SAFE_INT:
                raise CodecError("malformed", "a large int must be tagged")
            return
        if kind is not list or not d or type(d[0]) is not str:
            raise CodecError("malformed", f"unexpected {kind.__name__} in encoded data")
        tag, rest = d[0], d[1:]
        texts = all(type(x) is str for x in rest)
        if tag == "I" and len(rest) == 1 and texts:
            digits = rest[0].removeprefix("-")
            if digits and set(digits) <= _HEX:
                return
        elif tag in ("f", "b", "c") and len(rest) == (2 if tag == "c" else 1) and texts:
            try:
                for x in rest:
                    if tag == "b":
                        bytes.fromhex(x)
                    else:
                        float.fromhex(x)
            except (ValueError, OverflowError) as exc:
                raise CodecError("malformed", f"bad {tag!r} value: {exc}") from None
            return
        elif tag in _BUILD or tag == "d":
            items = rest
            if tag == "d":
                if not all(type(p) is list and len(p) == 2 for p in rest):
                    raise CodecError("malformed", "a dict entry must be a [key, value] pair")
                items = [x for p in rest for x in p]
            for x in items:
                check(x, depth + 1)
            keys = [p[0] for p in rest] if tag == "d" else rest if tag in ("s", "S") else []
            if not all(hashable(k) for k in keys):
                raise CodecError("malformed", "unhashable set member or dict key")
            return
        raise CodecError("malformed", f"bad {tag!r} value")

    check(data, 0)


def loads(line: str, *, max_chars: int = MAX_CHARS) -> Any:
    """Parse one line of untrusted JSON into its (still encoded) structure."""
    if len(line) > max_chars:
        raise CodecError("too_large", f"{len(line)} characters, over the {max_chars} limit")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise CodecError("malformed", f"not JSON: {str(exc)[:200]}") from None
