"""What a sandboxed run may use, and what came back from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rewardkit.errors import ConfigError

__all__ = ["ExecResult", "SandboxLimits"]


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    `wall_seconds` is the deadline that always holds (it also stops programs that sleep,
    which `cpu_seconds` cannot see). `memory_mb` bounds the address space (RLIMIT_AS) for
    languages whose runtime tolerates it, the data segment otherwise; where a memory
    cgroup is available it is also the run's whole budget, counting the working
    directory's files and /dev/shm with the program's memory (without one, the bound is
    `memory_mb` + `max_file_mb` + `shm_mb`). `max_processes` counts processes and threads;
    it binds because each run gets its own unprivileged uid (RLIMIT_NPROC does nothing for
    root). `max_file_mb` caps each written file and, when a mount namespace is available,
    the whole working directory (a tmpfs of that size); `shm_mb` sizes the private
    /dev/shm (POSIX shared memory, multiprocessing's semaphores). `max_output_bytes` caps
    stdout and stderr together; the program is killed past it.
    """

    cpu_seconds: float = 10.0
    wall_seconds: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 64
    max_open_files: int = 256
    max_output_bytes: int = 4 * 1024 * 1024
    shm_mb: int = 64

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"SandboxLimits.{name} must be a positive number, got {value!r}")
        for name in (
            "memory_mb",
            "max_processes",
            "max_file_mb",
            "max_open_files",
            "max_output_bytes",
            "shm_mb",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"SandboxLimits.{name} must be a positive integer, got {value!r}")
        if self.max_open_files < 8:
            raise ConfigError(
                "SandboxLimits.max_open_files must be at least 8 (stdio and the runtime need some)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one sandboxed run. The parent judges it; the exit code is evidence only.

    `exit_code` is None when the program was killed by a signal (then `signal` says which).
    `timed_out` means the wall-clock deadline killed it; `output_truncated` that it wrote more
    than `max_output_bytes` and was killed. `isolation` names the layers that were in force
    (e.g. ``("net", "pid", "mount", "uid")``); `error` is set when the program could not be
    started at all (e.g. the interpreter is missing).
    """

    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    output_truncated: bool = False
    wall_time: float = 0.0
    isolation: tuple[str, ...] = ()
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exited normally with status 0, within every limit."""
        return (
            self.exit_code == 0
            and not self.timed_out
            and not self.output_truncated
            and self.error is None
        )

    @property
    def status(self) -> str:
        """One word for logs and reward details: ok, exit_N, signal_N, timeout, output_limit, error."""
        if self.error is not None:
            return "error"
        if self.timed_out:
            return "timeout"
        if self.output_truncated:
            return "output_limit"
        if self.signal is not None:
            return f"signal_{self.signal}"
        return "ok" if self.exit_code == 0 else f"exit_{self.exit_code}"
