"""The parent's handles on worker processes: wait for boot and acknowledgement, and kill.

A `Worker` is one process and the parent's end of its pipe; `ProcessWorker` is a
multiprocessing child ("fork", "spawn"), `ForkedWorker` a child of the fork server.
"""

from __future__ import annotations

import contextlib
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from rewardkit.deadline._errors import WorkerCrashed
from rewardkit.deadline._protocol import ACK, LOAD_TIMEOUT, READY
from rewardkit.deadline._worker import process_worker_main


class Worker:
    """One worker process and the parent's end of its pipe."""

    conn: Connection
    ready: bool = False

    def wait_ready(self) -> None:
        """Block until the worker has booted (outside any call's deadline)."""
        if self.ready:
            return
        if not self.conn.poll(LOAD_TIMEOUT):
            raise WorkerCrashed(f"deadline worker did not start within {LOAD_TIMEOUT:g} s")
        try:
            message = self.conn.recv_bytes()
        except EOFError as exc:
            raise WorkerCrashed(
                "a deadline worker died while starting (its error is on stderr)"
            ) from exc
        self.on_ready(message)

    def on_ready(self, message: bytes) -> None:
        if message != READY:
            raise WorkerCrashed(f"worker sent {message[:20]!r} instead of its ready signal")
        self.ready = True

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


class ProcessWorker(Worker):
    """A "fork" or "spawn" worker: a multiprocessing child of this process."""

    def __init__(self, ctx: Any, preload: tuple[str, ...]) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=process_worker_main,
            args=(child, preload),
            name="rewardkit-deadline-worker",
            daemon=True,  # multiprocessing's exit hook reaps daemonic children too
        )
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def kill(self) -> None:
        """SIGKILL and reap: a killed worker never lingers as a zombie."""
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class ForkedWorker(Worker):
    """A worker forked by the fork server (which reaps it)."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self._pid = conn, pid
        self.pidfd: int | None = None
        # A pidfd names this process and no other, even if the pid is reused after death.
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                os.close(self.pidfd)
        self.pidfd = None
        with contextlib.suppress(Exception):
            self.conn.close()

    @property
    def pid(self) -> int:
        return self._pid


def expect_ack(worker: Worker) -> None:
    if not worker.conn.poll(LOAD_TIMEOUT):
        raise WorkerCrashed(f"worker did not load the call within {LOAD_TIMEOUT:g} s")
    message = worker.conn.recv_bytes()
    if message != ACK:
        raise WorkerCrashed(f"worker sent {message[:20]!r} instead of an acknowledgement")
