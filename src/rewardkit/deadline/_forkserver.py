"""rewardkit's fork server: one warm, single-threaded template process per parent process.

`fork_server_main` runs in the server, a fresh interpreter started with `python -c` that
imports it from this module by name (`__name__`, so a move cannot break it); `ForkServer`
is the parent's handle on it, and `fork_server()` the one every "forkserver" pool of this
process shares.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

from rewardkit.deadline._errors import WorkerCrashed
from rewardkit.deadline._handles import ForkedWorker
from rewardkit.deadline._protocol import LOAD_TIMEOUT, PROTOCOL
from rewardkit.deadline._worker import run_preload, worker_main


def fork_server_main(fd: int) -> None:
    """The pool's fork server: import and warm `preload`, then fork one worker per request.

    Request: a pickled preload tuple (entries added since the last fork are run first),
    then the worker's end of a socket pair passed as a file descriptor. Reply: the pid.
    """
    from multiprocessing.reduction import recv_handle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps workers: no zombies
    conn = Connection(fd)
    done: set[str] = set()
    while True:
        try:
            entries = pickle.loads(conn.recv_bytes())
            child_fd = recv_handle(conn)
        except (EOFError, OSError):
            return  # the pool closed or its process died
        with contextlib.suppress(Exception):  # a failing entry is reported by the worker
            run_preload(entries, done)
        pid = os.fork()
        if pid == 0:
            conn.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # fn may run subprocesses
            try:
                worker_main(Connection(child_fd), entries, done)
            finally:
                os._exit(0)
        os.close(child_fd)
        try:
            conn.send_bytes(str(pid).encode())
        except OSError:
            return  # the parent went away meanwhile (e.g. Ctrl-C): nothing to report to


class ForkServer:
    """The parent's handle on a fork server (see `fork_server_main`)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        code = (
            f"import sys; sys.path[:] = {sys.path!r}; "
            f"from {__name__} import fork_server_main; fork_server_main({theirs.fileno()})"
        )
        try:
            # Its own session: a Ctrl-C meant for the parent (the terminal signals the whole
            # foreground group) must not hit the server while it imports, before it can
            # ignore SIGINT; it exits on EOF when the parent goes.
            self.process = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.lock = threading.Lock()
        self.pid_of_owner = os.getpid()  # a forked child must start its own

    def fork(self, preload: tuple[str, ...]) -> ForkedWorker:
        from multiprocessing.reduction import send_handle

        ours, theirs = socket.socketpair()
        try:
            with self.lock:
                self.conn.send_bytes(pickle.dumps(preload, PROTOCOL))
                send_handle(self.conn, theirs.fileno(), self.process.pid)
                # The first fork waits for the server to import and warm `preload`.
                if not self.conn.poll(LOAD_TIMEOUT):
                    raise WorkerCrashed(f"fork server did not answer within {LOAD_TIMEOUT:g} s")
                pid = int(self.conn.recv_bytes())
        except (EOFError, OSError, ValueError) as exc:
            ours.close()
            raise WorkerCrashed(
                f"the deadline pool's fork server failed ({type(exc).__name__})"
            ) from exc
        finally:
            theirs.close()
        return ForkedWorker(Connection(ours.detach()), pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()  # the server exits on EOF
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """The process's fork server, shared by every "forkserver" pool: a second pool (the
    server's, a reward with its own `workers`) forks from an already warm template."""
    global _server
    with _server_lock:
        if _server is None or _server.pid_of_owner != os.getpid() or not _server.alive():
            _server = ForkServer()
        return _server


def close_fork_server() -> None:
    """Stop this process's fork server, if it started one (at exit, after the pools)."""
    with _server_lock:
        if _server is not None and _server.pid_of_owner == os.getpid():
            _server.close()
