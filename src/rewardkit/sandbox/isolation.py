"""Which isolation layers this host offers, and the supervisor process that applies them.

One supervisor runs per parent process (restarted after a fork or a crash). It probes the
layers once at start, so the probe is cached for the life of the process:

    net      fresh network, IPC and UTS namespaces (only a downed loopback: no connection
             goes anywhere)
    pid      fresh pid namespace (the program's init is pid 1; its exit kills every descendant)
    mount    private mount namespace whose root is the minimal read-only view of `_view`:
             system libraries, the interpreter, /dev basics, a tmpfs working directory
    uid      a private unprivileged uid per run (root only): RLIMIT_NPROC binds, no capabilities
    user     user namespace, used instead of root to get the others when not running as root
    seccomp  a libseccomp filter: no new namespaces, mounts, keyrings, BPF, perf, ptrace...
    cgroup   a memory cgroup per run (where one is writable): tmpfs and shm count too

Code is refused (`IsolationUnavailableError`) unless the network is cut off, the program
sees only the minimal view (mount) and the seccomp filter is in force. Opt in to weaker
isolation with ``allow_unisolated=True`` or the environment variable
``REWARDKIT_ALLOW_UNISOLATED=1``.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.errors import ConfigError, IsolationUnavailableError, SandboxError

__all__ = [
    "ALLOW_UNISOLATED_ENV",
    "LAYERS",
    "IsolationReport",
    "allow_unisolated_from_env",
    "isolation_report",
    "select_layers",
]

ALLOW_UNISOLATED_ENV = "REWARDKIT_ALLOW_UNISOLATED"
_SCRIPT = Path(__file__).with_name("_supervisor.py")
# Private uids are UID_BASE + the handler's pid: far above any login or system account.
UID_BASE = 1_000_000
#: every layer, in the order they are applied
LAYERS = ("user", "net", "mount", "pid", "uid", "seccomp", "cgroup")


@dataclass(frozen=True, slots=True)
class IsolationReport:
    """What the probe found: the layers that work and why the others do not."""

    layers: tuple[str, ...]
    errors: dict[str, str] = field(default_factory=dict)
    root: bool = False

    @property
    def network_isolated(self) -> bool:
        return "net" in self.layers

    @property
    def writes_contained(self) -> bool:
        return "mount" in self.layers or "uid" in self.layers

    @property
    def reads_contained(self) -> bool:
        """The program sees the minimal view, not the host's files."""
        return "mount" in self.layers

    @property
    def syscalls_filtered(self) -> bool:
        return "seccomp" in self.layers

    @property
    def memory_counted(self) -> bool:
        """A memory cgroup counts tmpfs and shared memory against `memory_mb`."""
        return "cgroup" in self.layers

    def missing(self) -> list[str]:
        """Human-readable list of the required protections this host lacks."""
        out = []
        if not self.network_isolated:
            out.append(f"network namespace ({self.errors.get('net', 'unavailable')})")
        if not self.reads_contained:
            why = self.errors.get("mount", "unavailable")
            out.append(f"mount namespace for a minimal read-only filesystem view ({why})")
        if not self.syscalls_filtered:
            why = self.errors.get("seccomp", "unavailable")
            out.append(f"seccomp filter ({why})")
        return out


def allow_unisolated_from_env() -> bool:
    return os.environ.get(ALLOW_UNISOLATED_ENV, "").strip().lower() in {"1", "true", "yes"}


def select_layers(
    allow_unisolated: bool | None = None, layers: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The layers to use for a run; raises if they do not isolate and nobody opted in.

    `layers` asks for a subset of the available ones (e.g. to test a fallback); by default
    every layer the host offers is used.
    """
    if not sys.platform.startswith("linux"):
        # pidfd, pipe2, namespaces and prctl: the supervisor cannot even run unisolated
        raise IsolationUnavailableError(
            f"the rewardkit sandbox needs Linux (this is {sys.platform}); run code rewards on a "
            "Linux host or in a Linux container"
        )
    report = isolation_report()
    if layers is not None:
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise ConfigError(
                f"unknown isolation layers {sorted(unknown)}; choose from {list(LAYERS)}"
            )
        unavailable = set(layers) - set(report.layers)
        if unavailable:
            raise IsolationUnavailableError(
                f"isolation layers {sorted(unavailable)} are not available here: "
                + "; ".join(
                    f"{k}: {report.errors.get(k, 'unavailable')}" for k in sorted(unavailable)
                )
            )
        if "user" in report.layers and "user" not in layers:
            layers = ["user", *layers]  # without root the others need the user namespace
        report = IsolationReport(
            tuple(x for x in LAYERS if x in layers), report.errors, report.root
        )
    missing = report.missing()
    if missing:
        allowed = allow_unisolated if allow_unisolated is not None else allow_unisolated_from_env()
        if not allowed:
            raise IsolationUnavailableError(
                "refusing to run untrusted code without "
                + "; ".join(missing)
                + ". Run as root or enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1), install libseccomp2, or accept "
                "the risk with "
                f"allow_unisolated=True / {ALLOW_UNISOLATED_ENV}=1"
            )
    return report.layers


def isolation_report() -> IsolationReport:
    """The cached probe of this process's supervisor (starts it on first use)."""
    return _supervisor().report


class _Supervisor:
    """Client end of one `_supervisor.py` process."""

    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid_owner = os.getpid()
        self._lock = threading.Lock()
        try:
            # -S -I: no site, no environment; the script needs only the standard library.
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-I", "-B", str(_SCRIPT), str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
        finally:
            child_end.close()
        self.sock = parent_end
        self.sock.settimeout(30)
        try:
            hello = json.loads(self.sock.recv(1 << 16) or b"{}").get("hello")
        except (OSError, ValueError) as exc:
            self.close()
            raise SandboxError(f"the sandbox supervisor did not start: {exc}") from exc
        if not hello:
            self.close()
            raise SandboxError("the sandbox supervisor exited during its probe")
        self.sock.settimeout(None)
        self.report = IsolationReport(
            layers=tuple(x for x in LAYERS if x in hello["layers"]),
            errors=dict(hello["errors"]),
            root=bool(hello["root"]),
        )

    def alive(self) -> bool:
        return self.pid_owner == os.getpid() and self.process.poll() is None

    def submit(self, request: dict[str, Any], fds: list[int]) -> None:
        with self._lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], fds)

    def close(self) -> None:
        self.sock.close()
        if self.pid_owner == os.getpid():
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_LOCK = threading.Lock()
_CURRENT: _Supervisor | None = None


def _supervisor(restart: bool = False) -> _Supervisor:
    global _CURRENT
    with _LOCK:
        current = _CURRENT
        if current is not None and (restart or not current.alive()):
            if current.pid_owner == os.getpid():
                current.close()
            current = None
        if current is None:
            current = _CURRENT = _Supervisor()
        return current


def submit(request: dict[str, Any], fds: list[int]) -> None:
    """Hand a run to the supervisor, restarting it once if it died."""
    try:
        _supervisor().submit(request, fds)
    except OSError:
        _supervisor(restart=True).submit(request, fds)


@atexit.register
def _shutdown() -> None:
    global _CURRENT
    with _LOCK:
        if _CURRENT is not None and _CURRENT.pid_owner == os.getpid():
            _CURRENT.close()
        _CURRENT = None
