"""The seccomp filter of every sandboxed program: compiled by libseccomp, installed by prctl.

Standard library only (the supervisor runs with ``python -S -I`` and imports this file
directly). libseccomp is the system library every container runtime uses; we only ask it
to *compile* the filter (once per supervisor) and export the BPF program, which the child
installs right before exec under no_new_privs. The default action is allow: the filter
is a deny list of the calls that escape or inspect the sandbox, not an allow list (which
would break interpreters in ways tests cannot enumerate).

Denied with EPERM: new namespaces and mounts (the nested user namespace that mounts an
unbounded tmpfs is the attack this closes), keyrings, BPF, perf, ptrace and cross-process
memory access, io_uring (its operations bypass seccomp), kernel modules and kexec,
userfaultfd, and System V shared memory / message queues (their pages would outlive the
program inside the IPC namespace without counting against RLIMIT_AS). `clone` is denied
only with a CLONE_NEW* flag; `clone3` answers ENOSYS (its flags sit in memory seccomp
cannot read), so libc falls back to `clone`. `memfd_create` answers ENOSYS: memfd pages
count against neither RLIMIT_AS nor any size-capped tmpfs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

__all__ = ["DENIED", "ENOSYS_CALLS", "NAMESPACE_FLAGS", "compile_filter", "install"]

DENIED = (
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "fanotify_init",
    "shmget",
    "msgget",
)
ENOSYS_CALLS = ("clone3", "memfd_create", "memfd_secret")
#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACE_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
)

_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_CMP_MASKED_EQ = 7
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise OSError(
            f"libseccomp is not installed ({exc}); install the libseccomp2 system package"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def compile_filter() -> bytes:
    """The BPF program (raw `struct sock_filter` array) for this machine's architecture."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:

        def add(name: str, action: int, cmps: list[_ArgCmp] | None = None) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a system call on this architecture (e.g. iopl on arm64)
            array = (_ArgCmp * len(cmps))(*cmps) if cmps else None
            ret = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps or ()), array)
            if ret < 0:
                raise OSError(-ret, f"seccomp rule for {name}: {os.strerror(-ret)}")

        for name in DENIED:
            add(name, _ACT_ERRNO | errno.EPERM)
        for name in ENOSYS_CALLS:
            add(name, _ACT_ERRNO | errno.ENOSYS)
        for flag in NAMESPACE_FLAGS:
            # one rule per flag: (flags & FLAG) == FLAG; the flags are argument 0 of clone
            add("clone", _ACT_ERRNO | errno.EPERM, [_ArgCmp(0, _CMP_MASKED_EQ, flag, flag)])
        r, w = os.pipe()
        try:
            ret = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            if ret < 0:
                raise OSError(-ret, f"seccomp_export_bpf: {os.strerror(-ret)}")
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)


def install(bpf: bytes) -> None:
    """Install `bpf` on the calling thread; no_new_privs must already be set."""
    if not bpf or len(bpf) % 8:
        raise OSError("empty or malformed seccomp program")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    ret = libc.prctl(
        _PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0
    )
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"installing the seccomp filter: {os.strerror(err)}")
