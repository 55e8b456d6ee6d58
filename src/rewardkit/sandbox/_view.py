"""The filesystem a sandboxed program sees: a fresh root holding only what running it needs.

Standard library only (imported by the supervisor script). Called in the run's own mount
namespace by the process that will fork or become the program:

    /                   an empty read-only tmpfs (new root, via pivot_root)
    /usr /bin /lib*     read-only binds of the host's (merged-usr symlinks copied as links)
    /etc/ld.so.*        the loader's cache and config, /etc/alternatives: read-only
    <interpreter>       read-only binds of the paths the caller names (the Python prefix,
                        a venv, a node install); their parents are empty directories, so
                        /root shows only .pyenv when the interpreter lives there
    /proc               a proc of the run's own pid namespace (only when it has one)
    /dev                null zero full random urandom, fd/stdin/stdout/stderr links
    /dev/shm            a private tmpfs of `shm_mb`
    <workdir>           a tmpfs of `max_file_mb` with a copy of the run's files, owned by it

Nothing else of the host exists there: not /tmp, /home, /root, the project, the caller's
directory, its input or output files. The old root is detached before the program starts.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

__all__ = ["SYSTEM_PATHS", "build_root", "make_readonly", "mount"]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

SYS_MOUNT_SETATTR = 442  # same number on every architecture (new syscall table)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2

#: host paths every run gets read-only when they exist
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
)
DEVICES = ("null", "zero", "full", "random", "urandom")
OLD = "/.oldroot"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}",
    )


def make_readonly(target: str) -> None:
    """`target` and every mount below it read-only and nosuid."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    ret = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        target.encode(),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if ret == 0:
        return
    # Kernels before 5.12: remount the bind itself, keeping the flags a user namespace locks.
    st = os.statvfs(target)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
    for bit, ms in ((os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC)):
        if st.f_flag & bit:
            flags |= ms
    mount(None, target, None, flags)


def read_tree(workdir: str) -> list[tuple[str, bytes, int]]:
    files = []
    for root, _dirs, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files.append((os.path.relpath(path, workdir), f.read(), os.stat(path).st_mode))
    return files


def _covered(path: str, done: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in done)


def _place(path: str, like: str) -> None:
    """Create `path` (and its parents) in the new root as a mount point shaped like `like`."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if os.path.isdir(like):
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _bind_readonly(paths: Sequence[str]) -> None:
    done: list[str] = []
    for path in paths:
        old = OLD + path
        if path == "/" or _covered(path, done) or not os.path.lexists(old):
            continue
        if os.path.islink(old):
            # merged /usr: /lib -> usr/lib stays a link; its target is bound on its own
            if not os.path.lexists(path):
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                os.symlink(os.readlink(old), path)
            continue
        _place(path, old)
        mount(old, path, None, MS_BIND | MS_REC)
        make_readonly(path)
        done.append(path)


def _make_dev(shm_mb: int) -> None:
    os.makedirs("/dev", mode=0o755, exist_ok=True)
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=64k,nr_inodes=64")
    for name in DEVICES:
        os.close(os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
        mount(f"{OLD}/dev/{name}", f"/dev/{name}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm", 0o1777)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={shm_mb}m")
    os.chmod("/dev", 0o755)
    make_readonly_sb("/dev")


def make_readonly_sb(target: str) -> None:
    """Remount a tmpfs we made read-only (not recursive: what is mounted below stays)."""
    mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def build_root(
    workdir: str,
    paths: Sequence[str],
    *,
    size_mb: int,
    shm_mb: int,
    uid: int,
    gid: int,
    mount_proc: bool,
) -> None:
    """Replace this mount namespace's root by the minimal view (see the module docstring)."""
    files = read_tree(workdir)
    # The new root is a tmpfs mounted over the workdir (its files are in memory now):
    # any directory would do, and this one is certain to exist and to be ours.
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    os.chdir(workdir)
    os.mkdir(OLD.lstrip("/"), 0o700)
    _check(_libc.syscall(ctypes.c_long(_pivot_root_nr()), b".", OLD[1:].encode()), "pivot_root")
    os.chdir("/")
    _bind_readonly([*SYSTEM_PATHS, *sorted(set(paths), key=len)])
    _make_dev(shm_mb)
    os.makedirs("/proc", mode=0o555, exist_ok=True)
    if mount_proc:
        # before the old root goes: in a user namespace a new proc needs a visible one
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(workdir, mode=0o755, exist_ok=True)
    opts = f"size={size_mb}m,nr_inodes=16384,mode=0700,uid={uid},gid={gid}"
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for rel, data, mode in files:
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, (mode & 0o777) | 0o444)
    _check(_libc.umount2(OLD.encode(), MNT_DETACH), "detach the old root")
    os.rmdir(OLD)
    make_readonly_sb("/")


def _pivot_root_nr() -> int:
    # glibc has no wrapper; the generic table (arm64, riscv64) numbers it 41
    return {"x86_64": 155, "i686": 217, "ppc64le": 203, "s390x": 217}.get(os.uname().machine, 41)
