"""The code that runs inside a worker process: preload, then a loop of requests.

Everything here runs in the child (forked by the fork server, or a "fork"/"spawn"
multiprocessing process); the parent side is `_handles`, `_pool` and `_map`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection

from rewardkit.deadline._protocol import ACK, PROTOCOL, READY


def run_preload(entries: Sequence[str], done: set[str]) -> None:
    """Import each "module" / import and call each "module:function" once per process."""
    for entry in entries:
        if entry in done:
            continue
        module_name, _, function = entry.partition(":")
        module = importlib.import_module(module_name)
        if function:
            getattr(module, function)()
        done.add(entry)


def _exit_when_orphaned(parent: int) -> None:
    """A worker busy on a power tower never reads the pipe EOF; this thread notices the
    parent is gone and exits. (PR_SET_PDEATHSIG would fire when the parent's *thread*
    exits, which kills workers started from a short-lived server thread.)"""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _encode_error(exc: BaseException, status: bool | None = False) -> bytes:
    """Pickle `(status, exception)` with the worker's traceback attached as a note; fall
    back to a RuntimeError when the exception cannot make the trip. Status False: one item
    failed; None: the whole request failed to load (the parent fails every item of it)."""
    note = "in deadline worker pid {}:\n{}".format(
        os.getpid(), "".join(traceback.format_exception(exc)).rstrip()
    )
    with contextlib.suppress(Exception):
        exc.add_note(note)
        data = pickle.dumps((status, exc), PROTOCOL)
        pickle.loads(data)  # an exception whose __init__ rejects its own args fails here
        return data
    return pickle.dumps((status, RuntimeError(f"{type(exc).__name__}: {exc}\n{note}")), PROTOCOL)


def worker_main(conn: Connection, preload: Sequence[str], done: set[str]) -> None:
    """Loop: receive `(preload, fn, kwargs, [args, ...])`, ack, send one result per args."""
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_preload(preload, done)
    conn.send_bytes(READY)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        try:
            entries, fn, kwargs, batch = pickle.loads(request)
            run_preload(entries, done)
        except BaseException as exc:
            conn.send_bytes(ACK)
            conn.send_bytes(_encode_error(exc, status=None))
            continue
        conn.send_bytes(ACK)
        for args in batch:
            try:
                data = pickle.dumps((True, fn(*args, **kwargs)), PROTOCOL)
            except BaseException as exc:
                data = _encode_error(exc)
            conn.send_bytes(data)


def process_worker_main(conn: Connection, preload: Sequence[str]) -> None:
    """Entry point of a "fork" or "spawn" worker."""
    worker_main(conn, preload, set())
