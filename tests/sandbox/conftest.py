from __future__ import annotations

import os

import pytest

from rewardkit.sandbox import isolation_report

FULL = ("net", "pid", "mount", "uid", "seccomp")


@pytest.fixture(scope="session")
def report():
    return isolation_report()


@pytest.fixture
def full_isolation(report):
    """Skip where this host cannot give the full isolation the hostile tests rely on."""
    missing = [layer for layer in FULL if layer not in report.layers]
    if missing:
        pytest.skip(f"host lacks isolation layers {missing}: {report.errors}")
    return report


@pytest.fixture
def processes_of_uid():
    return _processes_of_uid


def _processes_of_uid(uid: int) -> list[int]:
    """Pids of live (not zombie) processes whose real uid is `uid` (each run has its own).

    Zombies are left out: they are dead, only waiting for an init that reaps slowly.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                        break
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids
