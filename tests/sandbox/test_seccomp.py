"""No new namespaces, mounts, keyrings, BPF, perf or ptrace inside; memory counts tmpfs and shm.

The attack that motivated it: unshare a user+mount namespace, mount a 4 GiB tmpfs and park
memory there, outside `memory_mb` (RLIMIT_AS never sees tmpfs pages).
"""

from __future__ import annotations

import errno
import os
import re
import textwrap
import time
from pathlib import Path

import pytest

from rewardkit.sandbox import SandboxLimits, isolation, isolation_report, run_code

pytestmark = [
    pytest.mark.usefixtures("full_isolation"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's"),
]


def code(src: str) -> str:
    return textwrap.dedent(src).strip() + "\n"


def test_nested_namespace_tmpfs_attack_is_refused():
    src = code(
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
        uid = os.getuid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            print("unshare refused", ctypes.get_errno())
            raise SystemExit(0)
        open("/proc/self/setgroups", "w").write("deny")
        open("/proc/self/uid_map", "w").write(f"0 {uid} 1")
        if libc.mount(b"none", b"/tmp", b"tmpfs", 0, b"size=4g") != 0:
            print("mount refused", ctypes.get_errno())
            raise SystemExit(0)
        with open("/tmp/pin", "wb") as f:
            for _ in range(12):
                f.write(b"x" * (16 << 20))
        print("pinned 192 MiB outside the budget")
        """
    )
    r = run_code(src, limits=SandboxLimits(memory_mb=128))
    assert "pinned" not in r.stdout, r
    assert r.stdout.split() == ["unshare", "refused", str(errno.EPERM)], r


# name, (syscall number, args...), expected errno: each would need no privilege at all
# inside a user namespace, or leaks another process's memory or the kernel's attack surface
CALLS = [
    ("unshare-user", (272, 0x10000000), errno.EPERM),
    ("unshare-mount", (272, 0x00020000), errno.EPERM),
    ("clone-newuser", (56, 0x10000000 | 17, 0, 0, 0, 0), errno.EPERM),
    ("clone-newnet", (56, 0x40000000 | 17, 0, 0, 0, 0), errno.EPERM),
    ("clone3", (435, 0, 0), errno.ENOSYS),
    ("setns", (308, 0, 0), errno.EPERM),
    ("mount-tmpfs", (165, b"none", b"/tmp", b"tmpfs", 0, 0), errno.EPERM),
    ("umount2", (166, b"/proc", 2), errno.EPERM),
    ("pivot_root", (155, b".", b"."), errno.EPERM),
    ("keyctl", (250, 0, 0), errno.EPERM),
    ("add_key", (248, b"user", b"k", b"v", 1, -2), errno.EPERM),
    ("request_key", (249, b"user", b"k", 0, 0), errno.EPERM),
    ("bpf", (321, 0, 0, 0), errno.EPERM),
    ("perf_event_open", (298, 0, 0, -1, -1, 0), errno.EPERM),
    ("ptrace-traceme", (101, 0, 0, 0, 0), errno.EPERM),
    ("process_vm_readv", (310, 1, 0, 0, 0, 0, 0), errno.EPERM),
    ("userfaultfd", (323, 0), errno.EPERM),
    ("io_uring_setup", (425, 1, 0), errno.EPERM),
    ("memfd_create", (319, b"x", 0), errno.ENOSYS),
    ("shmget", (29, 0, 1 << 20, 0o1600), errno.EPERM),
    ("kexec_load", (246, 0, 0, 0, 0), errno.EPERM),
    ("init_module", (175, 0, 0, 0), errno.EPERM),
]


def test_dangerous_calls_are_refused():
    table = [(name, args) for name, args, _ in CALLS]
    src = code(
        f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        for name, args in {table!r}:
            ret = libc.syscall(*[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            print(name, ret, ctypes.get_errno() if ret < 0 else 0)
        """
    )
    r = run_code(src)
    assert r.ok, r
    got = {
        line.split()[0]: (int(line.split()[1]), int(line.split()[2]))
        for line in r.stdout.splitlines()
    }
    for name, _args, expected in CALLS:
        assert got[name] == (-1, expected), (name, got[name])


def test_ordinary_processes_and_threads_still_work():
    src = code(
        """
        import os, subprocess, threading
        t = threading.Thread(target=print, args=("thread",))
        t.start(); t.join()
        print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """
    )
    r = run_code(src)
    assert r.ok and r.stdout.split() == ["thread", "child", "fork", "7"], r


@pytest.fixture
def memory_cgroup():
    if not isolation_report().memory_counted:
        pytest.skip(f"no writable memory cgroup here: {isolation_report().errors.get('cgroup')}")


FILL = code(
    """
    chunk = b"x" * (16 << 20)
    n = 0
    try:
        with open({path!r}, "wb") as f:
            while n < 512:
                f.write(chunk)
                f.flush()
                n += 16
                print(n, flush=True)
    except OSError as exc:
        print("refused", exc.errno, flush=True)
    print("wrote", n)
    """
)


@pytest.mark.parametrize("path", ["big.bin", "/dev/shm/big.bin"], ids=["workdir", "dev-shm"])
def test_tmpfs_and_shm_count_against_the_memory_budget(memory_cgroup, path):
    # the tmpfs caps are far above the budget: only the cgroup can stop this at 128 MiB
    limits = SandboxLimits(memory_mb=128, max_file_mb=1024, shm_mb=1024, wall_seconds=20)
    r = run_code(FILL.format(path=path), limits=limits)
    assert not r.ok, r
    assert f"wrote {512}" not in r.stdout
    written = int(r.stdout.split()[-1]) if r.stdout.split() else 0
    assert written <= 128
    assert r.signal == 9 and r.details["memory_limit_hit"] is True


def test_the_workdir_tmpfs_is_capped_as_a_whole():
    """Without a cgroup this is what bounds the files: max_file_mb for all of them together."""
    src = code(
        """
        n = 0
        try:
            for i in range(32):
                with open(f"f{i}", "wb") as f:
                    f.write(b"x" * (8 << 20))
                n += 8
        except OSError as exc:
            print("refused", exc.errno)
        print("wrote", n)
        """
    )
    r = run_code(src, limits=SandboxLimits(memory_mb=512, max_file_mb=32, wall_seconds=20))
    assert r.ok, r
    assert r.stdout.split()[:2] == ["refused", str(errno.ENOSPC)]
    assert int(r.stdout.split()[-1]) <= 32


def _run_cgroups() -> list[str]:
    kind = "memory" if os.path.isdir("/sys/fs/cgroup/memory") else ""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    if kind:
        mine = next(ln.split(":", 2)[2] for ln in lines if "memory" in ln.split(":")[1].split(","))
    else:
        mine = next(ln.split(":", 2)[2] for ln in lines if ln.startswith("0::"))
    parent = os.path.join("/sys/fs/cgroup", kind, mine.lstrip("/"))
    return [d for d in os.listdir(parent) if d.startswith("rewardkit-")]


def _settled(predicate) -> bool:
    for _ in range(200):  # handlers remove their cgroup right after replying
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_cgroups_do_not_accumulate_and_go_with_the_supervisor(memory_cgroup):
    for _ in range(4):
        assert run_code("print(1)").ok
    # what remains are the spare handlers' cgroups, waiting for the next runs
    assert _settled(lambda: len(_run_cgroups()) <= isolation_spares())
    isolation._shutdown()
    assert _settled(lambda: _run_cgroups() == [])


def isolation_spares() -> int:
    # read, not imported: the supervisor is a script that puts its folder on sys.path
    text = (Path(isolation.__file__).with_name("_supervisor.py")).read_text()
    match = re.search(r"^SPARES = (\d+)", text, re.M)
    assert match
    return int(match.group(1))
