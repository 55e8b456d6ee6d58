"""Isolated execution of untrusted code, locally and without Docker.

Each run gets fresh network, pid, mount, ipc and uts namespaces, a private unprivileged
uid, a read-only view of the host with a size-capped tmpfs as its working directory,
rlimits, a wall-clock deadline and capped output; when it ends every descendant is
killed. See `isolation` for what is required and how to opt in to less.

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
