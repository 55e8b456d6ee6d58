"""Run untrusted programs: `run_code` for source text, `run_process` for a prepared directory.

The parent never trusts the child: it feeds stdin and reads stdout/stderr incrementally
through its own pipes, stops capturing (and has the run killed) past `max_output_bytes`,
and keeps a deadline of its own in case the supervisor's fails. What the program printed
is returned; deciding whether that is right is the caller's job, never the exit code's.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rewardkit.errors import SandboxError
from rewardkit.sandbox import isolation
from rewardkit.sandbox.languages import SANDBOX_PATH, get_language
from rewardkit.sandbox.limits import ExecResult, SandboxLimits

__all__ = ["run_code", "run_process", "scrubbed_env"]

# Beyond the wall limit, how long the parent waits on the supervisor before killing itself.
_GRACE_SECONDS = 5.0
# After the program exits, how long to wait for pipe EOF (only unisolated runs can leak
# a descendant that holds the pipe open).
_DRAIN_SECONDS = 0.5


def scrubbed_env(workdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed program: nothing inherited (no API keys)."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # BLAS/OpenMP start a thread per core: on a 128-core node that alone would exceed
        # max_processes (threads count) and crash `import numpy`.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


def run_code(
    source: str,
    *,
    language: str = "python",
    stdin: str | bytes = "",
    limits: SandboxLimits | None = None,
    files: Mapping[str, str | bytes] | None = None,
    allow_unisolated: bool | None = None,
    layers: Sequence[str] | None = None,
) -> ExecResult:
    """Write `source` (and `files`) into a fresh directory, run it, delete the directory."""
    lang = get_language(language)
    workdir = tempfile.mkdtemp(prefix="rewardkit-sandbox-")
    try:
        for name, content in {lang.filename: source, **(files or {})}.items():
            path = Path(workdir, name)
            if path.parent != Path(workdir):
                raise SandboxError(f"sandbox file names must be plain names, got {name!r}")
            data = content.encode() if isinstance(content, str) else content
            path.write_bytes(data)
            path.chmod(0o644)
        return run_process(
            lang.argv(),
            workdir,
            stdin=stdin,
            limits=limits,
            allow_unisolated=allow_unisolated,
            memory_rlimit=lang.memory_rlimit,
            layers=layers,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_process(
    argv: Sequence[str],
    workdir: str | os.PathLike[str],
    *,
    stdin: str | bytes = "",
    limits: SandboxLimits | None = None,
    env: Mapping[str, str] | None = None,
    allow_unisolated: bool | None = None,
    memory_rlimit: str = "as",
    expose: Sequence[str] = (),
    layers: Sequence[str] | None = None,
) -> ExecResult:
    """Run `argv` isolated, in `workdir` (which the program sees, and may write into).

    `env` adds variables to the scrubbed environment. `expose` names extra host paths
    the program may read (bound read-only into its view; the executable's installation
    and, for this interpreter, its prefixes are added automatically). Nothing else of the
    host is visible: not the caller's directory, /tmp, /home or the input files. Raises `IsolationUnavailableError` when
    the host cannot isolate and nobody opted in; a program that crashes, hangs or floods
    its output is a normal `ExecResult`. `layers` restricts isolation to a subset of
    what the host offers (see `isolation`); the default is everything available.
    """
    limits = limits or SandboxLimits()
    layers = isolation.select_layers(allow_unisolated, layers)
    workdir = os.path.realpath(workdir)
    if not argv:
        raise SandboxError("run_process needs a command")
    exe = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0], path=SANDBOX_PATH)
    if exe is None or not os.path.exists(exe):
        return ExecResult("", "", None, error=f"executable not found: {argv[0]}", isolation=layers)
    request = {
        "argv": [exe, *argv[1:]],
        "env": scrubbed_env(workdir, env),
        "workdir": workdir,
        "limits": limits.to_dict(),
        "layers": list(layers),
        "memory_rlimit": memory_rlimit,
        "expose": _expose_paths(exe, expose),
        "uid_base": isolation.UID_BASE,
    }
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return _execute(request, data, limits, layers)


def _expose_paths(exe: str, extra: Sequence[str]) -> list[str]:
    real = os.path.realpath(exe)
    paths = [real, *extra]
    if os.path.basename(os.path.dirname(real)) == "bin":
        # an installation prefix (/opt/node, ~/.pyenv/versions/X): its lib/ comes along
        paths.append(os.path.dirname(os.path.dirname(real)))
    if real == os.path.realpath(sys.executable) or exe == sys.executable:
        # a venv interpreter loads the base installation's stdlib and shared library
        paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    # "/" would be the whole host: the view never binds it
    return sorted({os.path.realpath(p) for p in paths} - {"/"})


def _execute(
    request: dict[str, object], stdin: bytes, limits: SandboxLimits, layers: tuple[str, ...]
) -> ExecResult:
    started = time.monotonic()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    reply, reply_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        isolation.submit(request, [reply_child.fileno(), in_r, out_w, err_w])
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        reply.close()
        raise
    finally:
        reply_child.close()
    for fd in (in_r, out_w, err_w):
        os.close(fd)  # the child holds them now; ours would keep the pipes from EOF

    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    captured = 0
    truncated = False
    exit_msg: dict[str, object] | None = None
    error: str | None = None
    killed = False
    pending = memoryview(stdin)
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ)
    sel.register(err_r, selectors.EVENT_READ)
    sel.register(reply, selectors.EVENT_READ)
    if pending:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    else:
        os.close(in_w)
        in_w = -1
    open_pipes = {out_r, err_r}
    hard_deadline = started + limits.wall_seconds + _GRACE_SECONDS
    drain_deadline: float | None = None

    def kill() -> None:
        nonlocal killed
        if not killed:
            killed = True
            with contextlib.suppress(OSError):
                reply.send(b"k")

    try:
        while open_pipes or exit_msg is None:
            now = time.monotonic()
            if exit_msg is not None:
                drain_deadline = drain_deadline or now + _DRAIN_SECONDS
                if now >= drain_deadline:
                    break
            if now >= hard_deadline:
                if exit_msg is None and now >= hard_deadline + _GRACE_SECONDS:
                    raise SandboxError("the sandbox supervisor stopped answering; run abandoned")
                kill()
            wait = (
                min(hard_deadline + (_GRACE_SECONDS if killed else 0), drain_deadline or 1e18) - now
            )
            for key, _ in sel.select(timeout=max(0.0, min(wait, 1.0))):
                fd = key.fd
                if fd == in_w:
                    try:
                        n = os.write(in_w, pending[:65536])
                        pending = pending[n:]
                    except (BrokenPipeError, OSError):
                        pending = pending[:0]  # the program stopped reading: its business
                    if not pending:
                        sel.unregister(in_w)
                        os.close(in_w)
                        in_w = -1
                elif fd == reply.fileno():
                    try:
                        msg = reply.recv(1 << 16)
                    except ConnectionResetError:
                        msg = b""  # the handler exited while a kill request was in flight
                    if not msg:
                        sel.unregister(reply)
                        if exit_msg is None:
                            raise SandboxError(
                                "the sandbox handler died before reporting an exit status"
                            )
                        continue
                    event = _decode(msg)
                    if event.get("event") == "exit":
                        exit_msg = event
                    elif event.get("event") == "error":
                        error = str(event.get("error"))
                        raise SandboxError(error)
                else:
                    data = os.read(fd, 65536)
                    if not data:
                        sel.unregister(fd)
                        open_pipes.discard(fd)
                        continue
                    room = limits.max_output_bytes - captured
                    if len(data) > room:
                        data = data[:room]
                        truncated = True
                        kill()
                    captured += len(data)
                    if data:
                        chunks[fd].append(data)
    finally:
        sel.close()
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        reply.close()

    assert exit_msg is not None
    status = int(str(exit_msg["status"]))
    code = os.waitstatus_to_exitcode(status)
    return ExecResult(
        stdout=b"".join(chunks[out_r]).decode("utf-8", errors="replace"),
        stderr=b"".join(chunks[err_r]).decode("utf-8", errors="replace"),
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        timed_out=bool(exit_msg.get("timed_out")) or (killed and not truncated),
        output_truncated=truncated,
        wall_time=time.monotonic() - started,
        isolation=layers,
        error=exit_msg.get("error") or error,  # type: ignore[arg-type]
        details={
            "cpu_seconds": exit_msg.get("cpu_seconds"),
            "max_rss_kb": exit_msg.get("max_rss_kb"),
            # namespaces, mounts and init, measured in the handler (the sandbox's own cost)
            "setup_seconds": exit_msg.get("setup_seconds"),
            # the memory cgroup's OOM killer ended the run at memory_mb (None: no cgroup)
            "memory_limit_hit": exit_msg.get("memory_limit_hit"),
        },
    )


def _decode(msg: bytes) -> dict[str, object]:
    value = json.loads(msg)
    return value if isinstance(value, dict) else {}
