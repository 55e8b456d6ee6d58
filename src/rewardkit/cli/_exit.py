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

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_LINE_ERRORS",
    "EXIT_OK",
    "EXIT_STATUS_HELP",
    "Interrupts",
    "exit_status",
    "interrupted_message",
]

EXIT_OK = 0
EXIT_LINE_ERRORS = 1
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 every line this run wrote is clean (scored, or unscored with a reason); "
    "1 it finished but some lines hold an 'error' (bad input rows, or failures after "
    "retries), so a script's `&& next_step` stops; 2 bad options or the run could not "
    "proceed; 130 interrupted (rerun to resume)."
)


def exit_status(error_lines: int) -> int:
    """0 when this run wrote no error line, else 1."""
    return EXIT_LINE_ERRORS if error_lines else EXIT_OK


def interrupted_message(command: str) -> str:
    return f"rewardkit {command}: interrupted; rerun the same command to resume"


class Interrupts:
    """How the `rewardkit` program answers Ctrl-C: one line on stderr and exit 130, never a
    traceback, whenever it comes.

    A KeyboardInterrupt raised at a random point of an import is not always a
    KeyboardInterrupt by the time it surfaces (Python 3.11 wraps one raised in a class's
    `__set_name__` in a RuntimeError), and one during interpreter shutdown cannot be
    caught at all. So outside the command itself (while subcommand modules import, while
    arguments parse, and after the command returned) SIGINT exits at once: nothing is
    open then. While the command runs (`raising()`), SIGINT is Python's KeyboardInterrupt
    again, so the command's own cleanup runs and `main` turns it into the same line.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    """

    def __init__(self, command: str) -> None:
        self.message = (interrupted_message(command) + "\n").encode()
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            signal.signal(signal.SIGINT, self._exit_now)

    def _exit_now(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):  # e.g. interrupted inside a stdout write
            sys.stdout.flush()
        os.write(2, self.message)  # unbuffered: stderr's buffer may be mid-write too
        os._exit(EXIT_INTERRUPTED)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """Ctrl-C raises KeyboardInterrupt inside the block; it exits at once after it."""
        if not self.active:
            yield
            return
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, self._exit_now)
