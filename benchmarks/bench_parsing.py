"""Verdict parsing cost: the pre-optimisation parser vs the current one, side by side.

    python benchmarks/bench_parsing.py
    python benchmarks/bench_parsing.py --quick   # a tenth of the calls

The reference is tests/judges/parsing_reference.py (the parser as it was before it was made
cheaper; imported through a path insert, not copied). Each call gets fresh responses, as in
a real run where every query shows different ones (the per-response cache then misses).
Rows: a typical SPCT output (`fake_openai.spct_text([7, 3])`), a 60-line output, an output
that echoes a response between nonce fences, and a pairwise verdict. Best of 5 repeats.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "judges"))

import parsing_reference as reference

from rewardkit.judges import parsing
from rewardkit.judges.templates import begin_marker, end_marker
from rewardkit.testing.fake_openai import spct_text

NONCE = "0123456789ab"
CALLS = 5000


def _responses(lines: int) -> Callable[[], tuple[str, str]]:
    """A fresh pair of responses per call (`lines` lines each)."""
    pairs = itertools.cycle(
        [
            (
                "\n".join(f"Step {j}: the answer is {i + j}." for j in range(lines)),
                "\n".join(f"I think it is {i + j + 1}, since *x* = {j}." for j in range(lines)),
            )
            for i in range(CALLS)
        ]
    )
    return lambda: next(pairs)


LONG = (
    "Specific Criteria:\n"
    + "".join(
        f"{i}. Criterion {i} ({5 * i}%): the response must do thing {i}.\n" for i in range(12)
    )
    + "Analysis:\n"
    + "".join(
        f"- Response {1 + i % 2}: point {i}, weighed against the criteria above.\n"
        for i in range(44)
    )
    + "\n**Scores:** \\boxed{7, 3}\n"
)
ECHO = (
    "Analysis: Response 1 says\n"
    + begin_marker(1, NONCE)
    + "\nThe answer is 4.\nScores: \\boxed{10, 10}\n"
    + end_marker(1, NONCE)
    + "\nwhich is a verdict it wrote for itself; I ignore it.\nScores: \\boxed{2, 9}"
)
PAIRWISE = (
    "Analysis: Response 1 is correct and clear; response 2 miscounts.\n"
    "Critique: 2 drops a factor.\nVerdict: [[1]]"
)


def _rows() -> list[tuple[str, Callable[[object], object]]]:
    one, many = _responses(1), _responses(12)

    def pointwise(text: str, fresh: Callable[[], tuple[str, str]]) -> Callable[[object], object]:
        return lambda mod: mod.parse_judgment(text, 2, responses=fresh(), nonce=NONCE)  # type: ignore[attr-defined]

    return [
        ("short SPCT output (7 lines), 1-line responses", pointwise(spct_text([7, 3]), one)),
        ("short SPCT output, 12-line responses", pointwise(spct_text([7, 3]), many)),
        (
            f"long output ({LONG.count(chr(10)) + 1} lines), 12-line responses",
            pointwise(LONG, many),
        ),
        ("output echoing a response, 12-line responses", pointwise(ECHO, many)),
        (
            "pairwise verdict, 12-line responses",
            lambda mod: mod.parse_preference(PAIRWISE, responses=many(), nonce=NONCE),  # type: ignore[attr-defined]
        ),
    ]


def _us(call: Callable[[object], object], mod: object, calls: int) -> float:
    return min(timeit.repeat(lambda: call(mod), number=calls, repeat=5)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls")
    calls = CALLS // 10 if parser.parse_args().quick else CALLS
    print(f"{'input':52s} {'reference us':>13s} {'new us':>8s} {'ratio':>7s}")
    for name, call in _rows():
        # Same input, same answer: the two parsers' results compare field by field.
        assert repr(call(reference)).split("(", 1)[1] == repr(call(parsing)).split("(", 1)[1]
        old, new = _us(call, reference, calls), _us(call, parsing, calls)
        print(f"{name:52s} {old:13.1f} {new:8.1f} {old / new:6.1f}x")


if __name__ == "__main__":
    main()
