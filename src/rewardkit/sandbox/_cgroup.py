"""A memory cgroup per run, where the host lets this process make one. Standard library only.

RLIMIT_AS bounds a process's address space but not what it parks in a tmpfs or in shared
memory; a memory cgroup counts all of it (anonymous memory, tmpfs and shm pages, page
cache) and its OOM killer ends the run at the limit. We use, in this order:

    v2   the process's own cgroup, if its cgroup.subtree_control already enables `memory`
         (a delegated subtree): runs become children with memory.max (and swap.max 0)
    v1   the process's own cgroup in the v1 memory hierarchy, if it may make children
         there (a root container with /sys/fs/cgroup/memory writable)

Anything else (a read-only cgroupfs, v2 without delegation) means no cgroup: the report
says so and the residual is documented in the package docstring.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["RunCgroup", "find_parent"]

_ROOT = "/sys/fs/cgroup"


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller`, or in v2 (None)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            if controller is None and _id == "0" and controllers == "":
                return path
            if controller is not None and controller in controllers.split(","):
                return path
    return None


def find_parent() -> tuple[str, str]:
    """(kind, directory) under which run cgroups can be made; raises OSError saying why not."""
    reasons = []
    if os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):
        path = _own_path(None)
        if path is not None:
            parent = os.path.join(_ROOT, path.lstrip("/"))
            try:
                with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                    enabled = f.read().split()
            except OSError as exc:
                enabled = []
                reasons.append(f"v2: {exc}")
            if "memory" in enabled:
                _probe("v2", parent)
                return "v2", parent
            reasons.append(f"v2: memory is not delegated to children of {parent}")
    else:
        path = _own_path("memory")
        if path is not None:
            parent = os.path.join(_ROOT, "memory", path.lstrip("/"))
            try:
                _probe("v1", parent)
                return "v1", parent
            except OSError as exc:
                reasons.append(f"v1: {exc}")
        else:
            reasons.append("no memory controller in /proc/self/cgroup")
    raise OSError("; ".join(reasons) or "no cgroup filesystem")


def _probe(kind: str, parent: str) -> None:
    cg = RunCgroup(kind, parent, f"rewardkit-probe-{os.getpid()}", 64 << 20)
    cg.remove()


class RunCgroup:
    """One run's cgroup: made with its limit, joined by the run's first process, removed."""

    def __init__(self, kind: str, parent: str, name: str, limit_bytes: int | None) -> None:
        self.kind = kind
        self.name = name
        self.path = os.path.join(parent, name)
        self.joined = False
        os.mkdir(self.path, 0o700)
        try:
            if limit_bytes is not None:
                self.set_limit(limit_bytes)
            # the run lives in its own mount namespace, where these paths may be gone
            self.parent_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.dir_fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.procs_fd = os.open(
                os.path.join(self.path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC
            )
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)
            raise

    def set_limit(self, limit_bytes: int) -> None:
        if self.kind == "v2":
            self._write("memory.max", limit_bytes)
            self._write("memory.swap.max", 0, optional=True)
        else:
            self._write("memory.limit_in_bytes", limit_bytes)
            self._write("memory.memsw.limit_in_bytes", limit_bytes, optional=True)

    def _write(self, name: str, value: int, optional: bool = False) -> None:
        try:
            with open(os.path.join(self.path, name), "w") as f:
                f.write(str(value))
        except OSError:
            if not optional:
                raise

    def join(self) -> None:
        """Move the calling process in ("0" is the writer, whatever its pid namespace).

        Slow (~10 ms: the kernel waits for an RCU grace period), hence the supervisor's
        spare handlers, which join ahead of their run.
        """
        os.write(self.procs_fd, b"0")
        self.joined = True

    def leave(self) -> None:
        """Move the calling process back to the parent, so that the cgroup can go."""
        fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.parent_fd)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended a process of this run at the limit."""
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.dir_fd)
            try:
                text = os.read(fd, 4096).decode()
            finally:
                os.close(fd)
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return False

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (retrying while they finish dying).

        A process that joined it itself leaves it first.
        """
        if self.joined:
            with contextlib.suppress(OSError):
                self.leave()
        for fd in (self.procs_fd, self.dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for delay in (0, 0.001, 0.005, 0.02, 0.05, 0.1, 0.25):
            time.sleep(delay)
            try:
                os.rmdir(self.name, dir_fd=self.parent_fd)
                break
            except FileNotFoundError:
                break
            except OSError:
                continue
        with contextlib.suppress(OSError):
            os.close(self.parent_fd)
