"""The exit status of the commands that write one output line per input line (score, judge).

One rule for both, so `rewardkit score ... && next_step` is safe to script:

    0    every line this run wrote is clean (scored, or unscored with a reason)
    1    the run finished, but some lines it wrote hold an `error` (a malformed or repeated
         input row, a query the judge failed on after retries): OUTPUT is complete, those
         lines name what went wrong
    2    the run could not start or stopped: bad options, a missing input, an unwritable
         output (one line on stderr says what to fix)
    130  interrupted; rerun the same command to resume

An unscored sample is data, not an error: it does not make the status 1. Error lines
written by an earlier run count as done on a rerun (judge: `--retry-errors` redoes them).
"""

from __future__ import annotations

__all__ = ["EXIT_LINE_ERRORS", "EXIT_OK", "EXIT_STATUS_HELP", "exit_status"]

EXIT_OK = 0
EXIT_LINE_ERRORS = 1

EXIT_STATUS_HELP = (
    "exit status: 0 every line this run wrote is clean (scored, or unscored with a reason); "
    "1 it finished but some lines hold an 'error' (bad input rows, or failures after "
    "retries), so a script's `&& next_step` stops; 2 bad options or the run could not "
    "proceed; 130 interrupted (rerun to resume)."
)


def exit_status(error_lines: int) -> int:
    """0 when this run wrote no error line, else 1."""
    return EXIT_LINE_ERRORS if error_lines else EXIT_OK
