"""Isolated execution of untrusted code, locally and without Docker.

What a run is contained by. The network cut-off, the filesystem view and the syscall
filter are required: a host that cannot give them is refused unless the caller opts in
with ``allow_unisolated=True`` / ``REWARDKIT_ALLOW_UNISOLATED=1`` (see `isolation`).

- **What it can read**: a fresh root (pivot_root into a tmpfs) holding only /usr and the
  merged-usr links, the loader's /etc files (ld.so.cache, ld.so.conf*, alternatives,
  localtime), the interpreter's installation read-only (for Python: sys.prefix and
  base_prefix, e.g. one ~/.pyenv/versions/X, never the rest of the home directory),
  /dev/{null,zero,full,random,urandom}, a /proc of its own pid namespace, and its working
  directory. Not /tmp, /home, /root, the project, the caller's directory, the input or
  output files, /sys, /etc/passwd or /etc/hostname; `run_process(expose=...)` adds paths
  on purpose.
- **What it can write**: its working directory (a tmpfs of `max_file_mb`) and a private
  /dev/shm (a tmpfs of `shm_mb`); everything else is read-only. Both vanish with the run.
- **Who it can reach**: nobody; a fresh network namespace with a downed loopback, and
  fresh IPC and UTS namespaces.
- **Who it is**: a private unprivileged uid per run (as root; a user namespace otherwise),
  no capabilities, no_new_privs, so RLIMIT_NPROC counts this run alone.
- **What it can ask the kernel**: no new namespaces, mounts, keyrings, BPF, perf,
  ptrace/process_vm_*, io_uring, userfaultfd, modules, kexec, System V shm or message
  queues (seccomp, EPERM); clone3 and memfd_create answer ENOSYS.
- **How much**: rlimits (CPU, address space, processes+threads, file size, open files,
  no core), a wall-clock deadline, `max_output_bytes` of stdout+stderr together, and, where
  a memory cgroup is writable (cgroup v1, or v2 with `memory` delegated), one budget of
  `memory_mb` that counts its memory, its files and /dev/shm; the run is OOM-killed at
  it (``details["memory_limit_hit"]``). When it ends every descendant is killed.

What is *not* contained: without a writable memory cgroup, tmpfs pages are bounded by
their own caps, not by `memory_mb` (the worst case is `memory_mb` + `max_file_mb` +
`shm_mb`); in a v1 cgroup kernel memory (sockets, pipes) is not counted; the program can
read everything under /usr and the interpreter's prefix (a virtualenv's site-packages
included), the host's kernel version and the host-wide numbers /proc shows (meminfo,
cpuinfo, loadavg); CPU time is per process, not per run (max_processes x cpu_seconds);
and the kernel itself is shared (a kernel exploit is out of scope: use a VM for that).

    >>> from rewardkit.sandbox import run_code
    >>> run_code("print(input()[::-1])", stdin="abc\\n").stdout
    'cba\\n'
"""

from rewardkit.sandbox.isolation import (
    ALLOW_UNISOLATED_ENV,
    IsolationReport,
    isolation_report,
    select_layers,
)
from rewardkit.sandbox.languages import LANGUAGES, Language, available_languages, get_language
from rewardkit.sandbox.limits import ExecResult, SandboxLimits
from rewardkit.sandbox.runner import run_code, run_process, scrubbed_env

__all__ = [
    "ALLOW_UNISOLATED_ENV",
    "LANGUAGES",
    "ExecResult",
    "IsolationReport",
    "Language",
    "SandboxLimits",
    "available_languages",
    "get_language",
    "isolation_report",
    "run_code",
    "run_process",
    "scrubbed_env",
    "select_layers",
]
