"""Ctrl-C at any point of a `rewardkit` command: one line on stderr, exit 130, no traceback
(rewardkit.cli._exit.Interrupts). Each test runs the program as the console script does
(`from rewardkit.cli.main import main; sys.exit(main())`) in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MESSAGE = "interrupted; rerun the same command to resume"

# The console script, plus a hook that makes importing `SLOW` stall where `SPOT` says,
# printing "stalled" first, so the test can send SIGINT exactly then.
LAUNCHER = """
import importlib.abc, os, sys, time
SLOW, SPOT = os.environ["SLOW"], os.environ["SPOT"]

class Stall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != SLOW:
            return None
        sys.meta_path.remove(self)
        if SPOT == "import":
            print("stalled", flush=True); time.sleep(30)
        else:  # inside a class's __set_name__, as a dataclass field's runs on import
            class Descriptor:
                def __set_name__(self, owner, attr):
                    print("stalled", flush=True); time.sleep(30)
            type("Owner", (), {"field": Descriptor()})
        return None

if SLOW:
    sys.meta_path.insert(0, Stall())
print("started", flush=True)
from rewardkit.cli.main import main
print("main", flush=True)
sys.exit(main())
"""


def launch(*argv: str, slow: str = "", spot: str = "import") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "SLOW": slow, "SPOT": spot}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def interrupt_after(proc: subprocess.Popen[str], marker: str, delay: float = 0.0) -> str:
    """Wait for `marker` on stdout, SIGINT after `delay`; stderr once it exited."""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == marker:
                break
        else:
            raise AssertionError(f"no {marker!r}: rc {proc.wait()}, {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


@pytest.mark.parametrize("spot", ["import", "set_name"])
def test_ctrl_c_while_the_subcommand_imports_exits_130_in_one_line(spot: str) -> None:
    # "set_name": Python 3.11 wraps a KeyboardInterrupt raised there in a RuntimeError,
    # which no `except KeyboardInterrupt` catches; it printed a traceback and exited 1.
    proc = launch("judge", "--help", slow="rewardkit.cli.judge", spot=spot)
    err = interrupt_after(proc, "stalled")
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert err.strip() == f"rewardkit judge: {MESSAGE}"


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.03, 0.08])
def test_ctrl_c_at_any_moment_after_main_starts_prints_no_traceback(delay: float) -> None:
    proc = launch("rewards")
    err = interrupt_after(proc, "main", delay)
    assert "Traceback" not in err, err
    # 130 from rewardkit, or 0 when `rewards` finished first. A SIGINT that lands while
    # Python finalizes (its own handler already restored) ends the process by the signal
    # itself, which a shell reports as 130 too.
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    if proc.returncode == 130:
        assert err.strip().endswith(MESSAGE), err
