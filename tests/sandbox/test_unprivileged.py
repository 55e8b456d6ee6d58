"""Without root, the supervisor gets its namespaces from a user namespace.

Run as `nobody` through `setpriv`, with the system Python (nobody cannot reach a pyenv
under /root) talking the supervisor's protocol directly: the same script the library
starts, so this checks the code path a non-root user gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

SUPERVISOR = (
    Path(__file__).resolve().parents[2] / "src" / "rewardkit" / "sandbox" / "_supervisor.py"
)
SYSTEM_PYTHON = "/usr/bin/python3"

CLIENT = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys, tempfile
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sup = subprocess.Popen([sys.executable, "-S", "-I", sys.argv[1], str(b.fileno())], pass_fds=(b.fileno(),))
    b.close()
    hello = json.loads(a.recv(65536))["hello"]
    wd = tempfile.mkdtemp()
    with open(os.path.join(wd, "main.py"), "w") as f:
        f.write(sys.argv[2])
    limits = {"cpu_seconds": 5, "wall_seconds": 5, "memory_mb": 512, "max_processes": 16,
              "max_file_mb": 8, "max_open_files": 64, "max_output_bytes": 100000}
    req = {"argv": [sys.executable, "-I", "main.py"], "env": {"PATH": "/usr/bin:/bin"}, "workdir": wd,
           "limits": limits, "layers": hello["layers"], "memory_rlimit": "as", "expose": [],
           "uid_base": 1000000}
    ir, iw = os.pipe(); orr, ow = os.pipe(); er, ew = os.pipe()
    r, rc = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    socket.send_fds(a, [json.dumps(req).encode()], [rc.fileno(), ir, ow, ew])
    for fd in (ir, ow, ew, iw):
        os.close(fd)
    rc.close()
    events = [json.loads(r.recv(65536)), json.loads(r.recv(65536))]
    out = os.read(orr, 100000).decode()
    a.close()
    sup.wait(timeout=10)
    print(json.dumps({"hello": hello, "events": events, "stdout": out}))
    """
)

PROGRAM = textwrap.dedent(
    """
    import os, socket
    print("uid", os.getuid(), "pid", os.getpid())
    for path in ("/tmp/rewardkit-unpriv-escape", "/var/tmp/rewardkit-unpriv-escape"):
        try:
            open(path, "w")
            print("wrote", path)
        except OSError as exc:
            print("denied", exc.errno)
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        print("connected")
    except OSError as exc:
        print("net blocked", exc.errno)
    n = 0
    while True:
        try:
            if os.fork() == 0:
                import time
                time.sleep(30)
            n += 1
        except OSError:
            break
    print("forks", n)
    """
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root (to become nobody), setpriv and a system python",
)
def test_unprivileged_user_gets_namespaces_and_limits():
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-I",
            "-c",
            CLIENT,
            str(SUPERVISOR),
            PROGRAM,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    if proc.returncode != 0 and "user" in proc.stderr:
        pytest.skip(f"unprivileged user namespaces unavailable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    if "user" not in report["hello"]["layers"]:
        pytest.skip(f"unprivileged user namespaces unavailable: {report['hello']['errors']}")
    assert {"user", "net", "pid", "mount"} <= set(report["hello"]["layers"])
    assert "uid" not in report["hello"]["layers"]
    started, done = report["events"]
    assert started["event"] == "started" and done["event"] == "exit" and not done["timed_out"]
    out = report["stdout"]
    assert "uid 65534 pid 2" in out
    assert out.count("denied") == 2 and "wrote" not in out
    assert "net blocked" in out and "connected" not in out
    forks = int(out.split("forks")[1])
    assert 0 < forks < 16  # RLIMIT_NPROC binds, counted in this user namespace only
    assert not os.path.exists("/tmp/rewardkit-unpriv-escape")
