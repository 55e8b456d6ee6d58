"""Hostile programs are contained: each test runs one attack and checks the host after."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from rewardkit.sandbox import SandboxLimits, run_code, run_process

pytestmark = pytest.mark.usefixtures("full_isolation")

REPO = Path(__file__).resolve().parents[2]


def code(src: str) -> str:
    return textwrap.dedent(src).strip() + "\n"


def test_infinite_loop_is_stopped_by_cpu_limit():
    r = run_code("while True:\n    pass\n", limits=SandboxLimits(cpu_seconds=1, wall_seconds=5))
    assert not r.ok
    assert r.signal is not None or r.timed_out
    assert r.wall_time < 4.5


def test_sleep_is_stopped_by_wall_clock():
    r = run_code(
        "import time\ntime.sleep(60)\n", limits=SandboxLimits(cpu_seconds=1, wall_seconds=1)
    )
    assert r.timed_out and r.status == "timeout"
    assert r.wall_time < 3


def test_fork_bomb_is_contained_and_leaves_nothing_behind(processes_of_uid):
    src = code(
        """
        import os, sys
        print(os.getuid(), flush=True)
        n = 0
        while True:
            try:
                if os.fork() == 0:
                    while True:
                        pass
                n += 1
            except OSError:
                print("fork refused after", n, flush=True)
                break
        while True:
            pass
        """
    )
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=2, max_processes=16)
    r = run_code(src, limits=limits)
    uid = int(r.stdout.split()[0])
    assert "fork refused after" in r.stdout
    refused_after = int(r.stdout.split()[-1])
    assert refused_after < 16
    assert r.timed_out
    assert processes_of_uid(uid) == []


@pytest.mark.parametrize(
    "src",
    [
        "x = bytearray(8 * 1024**3)\n",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))\n",
    ],
    ids=["one-allocation", "gradual"],
)
def test_memory_bomb_hits_the_limit(src):
    r = run_code(src, limits=SandboxLimits(memory_mb=256, wall_seconds=10))
    assert not r.ok and not r.timed_out
    assert "MemoryError" in r.stderr or r.signal is not None
    assert r.wall_time < 8


def test_network_is_unreachable_even_on_loopback():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    src = code(
        f"""
        import socket
        for host in ("127.0.0.1", "localhost", "10.0.0.1"):
            try:
                socket.create_connection((host, {port}), timeout=1).close()
                print("connected", host)
            except OSError as exc:
                print("blocked", host, type(exc).__name__)
        """
    )
    try:
        r = run_code(src, limits=SandboxLimits(wall_seconds=8))
        assert r.stdout.count("blocked") == 3, r
        assert "connected" not in r.stdout
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached the server
    finally:
        server.close()


def test_writes_outside_the_workdir_fail_and_inside_succeed(tmp_path):
    name = f"rewardkit-escape-{uuid.uuid4().hex}"
    targets = [
        f"/tmp/{name}",
        str(REPO / name),
        f"/var/tmp/{name}",
        "/etc/passwd",
    ]
    # /dev/shm is the run's own size-capped tmpfs (multiprocessing needs it): writable
    # inside, and nothing reaches the host's
    private = f"/dev/shm/{name}"
    src = code(
        f"""
        import os
        for path in {targets!r}:
            try:
                with open(path, "a") as f:
                    f.write("pwned")
                print("wrote", path)
            except OSError as exc:
                print("denied", path, exc.errno)
        with open("own.txt", "w") as f:
            f.write("fine")
        print("own", open("own.txt").read())
        with open({private!r}, "w") as f:
            f.write("private")
        """
    )
    passwd = Path("/etc/passwd").read_bytes()
    r = run_code(src)
    assert r.ok, r
    assert "wrote" not in r.stdout
    assert r.stdout.count("denied") == len(targets)
    assert "own fine" in r.stdout
    for path in [*targets[:-1], private]:
        assert not os.path.exists(path)
    assert Path("/etc/passwd").read_bytes() == passwd


@pytest.mark.parametrize(
    "attack",
    [
        "os.kill(os.getppid(), signal.SIGKILL)",
        "os.killpg(os.getpgid(0), signal.SIGKILL)",
        "os.kill(-1, signal.SIGKILL)",
        "[os.kill(p, signal.SIGKILL) for p in range(2, 4096) if p != os.getpid()]",
    ],
)
def test_killing_parents_hurts_nobody_outside(attack):
    src = f"import os, signal\ntry:\n    {attack}\nexcept OSError as exc:\n    print('refused', exc.errno)\nprint('still here')\n"
    r = run_code(src)
    assert r.exit_code is not None or r.signal is not None
    # we are alive, and the sandbox still works afterwards
    assert run_code("print(6 * 7)").stdout == "42\n"


@pytest.mark.parametrize("layers", [None, ("net", "uid")], ids=["pid-namespace", "uid-sweep"])
def test_orphaned_daemon_never_runs_after_return(layers, processes_of_uid):
    """A double-forked daemon that waits and then writes: the write never happens.

    The daemon writes into a host directory (no mount namespace here, so its writes are
    visible); the control run, with no wait, proves the write would land if it ran.
    """

    def run(delay: float):
        # not tmp_path: its parent is 0700 and this run has no mount namespace to expose it
        workdir = Path(tempfile.mkdtemp(prefix="rewardkit-test-"))
        dirs.append(workdir)
        src = code(
            f"""
            import os, time
            print(os.getuid(), flush=True)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep({delay})
                    with open("daemon-was-here", "w") as f:
                        f.write("x")
                    os._exit(0)
                os._exit(0)
            time.sleep(0.3)
            """
        )
        (workdir / "main.py").write_text(src)
        use = layers or ("net", "pid", "uid")
        # without the mount namespace the host is readable: an explicit opt-in
        r = run_process(["python3", "-I", "main.py"], workdir, layers=use, allow_unisolated=True)
        return workdir, r

    dirs: list[Path] = []
    try:
        workdir, r = run(0.0)
        assert r.ok, r
        assert (workdir / "daemon-was-here").exists()

        workdir, r = run(1.0)
        assert r.ok, r
        uid = int(r.stdout.split()[0])
        assert processes_of_uid(uid) == []
        time.sleep(1.5)
        assert not (workdir / "daemon-was-here").exists()
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_gigabytes_of_output_are_capped_quickly():
    src = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
    limits = SandboxLimits(max_output_bytes=1 << 20, wall_seconds=20)
    t = time.monotonic()
    r = run_code(src, limits=limits)
    assert r.output_truncated and r.status == "output_limit"
    assert len(r.stdout) + len(r.stderr) == 1 << 20
    assert time.monotonic() - t < 10
