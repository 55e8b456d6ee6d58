"""The sandbox's normal behaviour: I/O, limits, environment, isolation policy, languages."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading

import pytest

from rewardkit.errors import ConfigError, IsolationUnavailableError
from rewardkit.sandbox import (
    ALLOW_UNISOLATED_ENV,
    ExecResult,
    IsolationReport,
    SandboxLimits,
    run_code,
    run_process,
    select_layers,
)
from rewardkit.sandbox import isolation as iso

needs_isolation = pytest.mark.usefixtures("full_isolation")


@needs_isolation
def test_stdin_to_stdout_and_isolation_reported():
    r = run_code("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n", stdin="1 2 3\n")
    assert r.ok and r.stdout == "6\n" and r.stderr == ""
    assert set(r.isolation) >= {"net", "pid", "mount", "uid"}
    assert r.status == "ok"


@needs_isolation
def test_exit_code_and_stderr_are_reported():
    r = run_code("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n")
    assert (r.stdout, r.stderr, r.exit_code, r.ok, r.status) == (
        "out\n",
        "err\n",
        3,
        False,
        "exit_3",
    )


@needs_isolation
@pytest.mark.parametrize(
    ("src", "sig"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", 15),
        ("import ctypes\nctypes.string_at(0)\n", 11),
        ("import signal, time\nsignal.alarm(1)\ntime.sleep(5)\n", 14),
    ],
    ids=["self-kill", "segfault", "alarm"],
)
def test_killed_by_signal(src, sig):
    r = run_code(src)
    assert (r.exit_code, r.signal, r.status, r.timed_out) == (None, sig, f"signal_{sig}", False)


@needs_isolation
def test_large_stdin_that_is_never_read_does_not_block():
    r = run_code("print('done')\n", stdin="x" * (4 << 20))
    assert r.ok and r.stdout == "done\n"


@needs_isolation
def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    r = run_code(
        "import os\nprint(sorted(os.environ.items()))\nprint(os.getcwd() == os.environ['HOME'])\n"
    )
    assert "sk-do-not-leak" not in r.stdout
    assert "OPENAI_API_KEY" not in r.stdout
    assert r.stdout.splitlines()[-1] == "True"


@needs_isolation
def test_sees_only_its_own_processes_and_a_private_uid():
    src = "import os\nprint(os.getpid(), os.getppid(), os.getuid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
    r = run_code(src)
    pid, ppid, uid, procs = r.stdout.split(" ", 3)
    assert (pid, ppid) == ("2", "1")  # pid 1 is the sandbox's init
    assert int(uid) >= iso.UID_BASE
    assert procs.strip() == "['1', '2']"


@needs_isolation
@pytest.mark.skipif(
    not os.path.isdir("/root") or bool(os.stat("/root").st_mode & stat.S_IXOTH),
    reason="only meaningful where /root is closed to others",
)
def test_closed_directories_show_only_what_the_interpreter_needs():
    r = run_code(
        "import os\ntry:\n    print(sorted(os.listdir('/root')))\nexcept OSError as e:\n    print('denied')\n"
    )
    assert r.ok
    listing = r.stdout.strip()
    assert listing == "denied" or all(
        name in {".pyenv", ".local", ".cache"} for name in eval(listing)
    )


@needs_isolation
def test_workdir_is_writable_and_removed_afterwards():
    r = run_code(
        "import os\nopen('f.txt', 'w').write('abc')\nprint(os.getcwd())\nprint(open('f.txt').read())\n"
    )
    workdir, content = r.stdout.split()
    assert content == "abc"
    assert not os.path.exists(workdir)


@needs_isolation
@pytest.mark.parametrize(
    ("src", "limits", "expect"),
    [
        # file size: the write is refused (SIGXFSZ kills, or EFBIG when ignored)
        ("open('big', 'wb').write(b'x' * (3 << 20))\n", SandboxLimits(max_file_mb=1), "fail"),
        # open files: the 40th open fails
        (
            "fs = [open('f%d' % i, 'w') for i in range(40)]\n",
            SandboxLimits(max_open_files=32),
            "fail",
        ),
        # threads count as processes
        (
            "import threading, time\nts=[threading.Thread(target=time.sleep, args=(1,)) for _ in range(20)]\n"
            "[t.start() for t in ts]\n",
            SandboxLimits(max_processes=8),
            "fail",
        ),
        ("print(1)\n", SandboxLimits(max_file_mb=1, max_open_files=32, max_processes=8), "ok"),
    ],
    ids=["file-size", "open-files", "threads", "within-limits"],
)
def test_resource_limits(src, limits, expect):
    r = run_code(src, limits=limits)
    assert (r.ok, r.timed_out) == (expect == "ok", False), r


@needs_isolation
def test_numpy_imports_within_a_small_process_limit():
    pytest.importorskip("numpy")
    # BLAS would start a thread per core; the scrubbed env pins it to one
    r = run_code(
        "import numpy as np\nprint(int(np.arange(10).sum()))\n",
        limits=SandboxLimits(max_processes=4),
    )
    assert r.ok and r.stdout == "45\n", r


@needs_isolation
def test_concurrent_runs_are_independent():
    results: list[ExecResult] = [None] * 6  # type: ignore[list-item]

    def work(i: int) -> None:
        results[i] = run_code(f"import os\nprint({i}, os.getuid())\n")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [int(r.stdout.split()[0]) for r in results] == list(range(6))
    assert len({r.stdout.split()[1] for r in results}) == 6  # one private uid per live run


@needs_isolation
def test_supervisor_is_restarted_after_it_dies():
    assert run_code("print(1)").stdout == "1\n"
    sup = iso._supervisor()
    sup.process.kill()
    sup.process.wait()
    assert run_code("print(2)").stdout == "2\n"


@needs_isolation
def test_a_forked_child_gets_its_own_supervisor():
    assert run_code("print(1)").ok
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = run_code("print(3)").stdout == "3\n"
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@needs_isolation
def test_missing_executable_is_an_error_result(tmp_path):
    r = run_process(["no-such-interpreter-xyz", "main.py"], tmp_path)
    assert r.error and "not found" in r.error and r.status == "error"


@needs_isolation
@pytest.mark.parametrize(
    ("language", "src", "stdin", "out"),
    [
        ("python", "print(input().upper())", "ab\n", "AB\n"),
        ("bash", 'read x; echo "got $x"', "ab\n", "got ab\n"),
        (
            "javascript",
            "process.stdin.on('data', d => console.log(String(d).trim().length))",
            "abc\n",
            "3\n",
        ),
    ],
)
def test_languages(language, src, stdin, out):
    from rewardkit.sandbox import get_language

    if not get_language(language).available():
        pytest.skip(f"{language} interpreter not installed")
    r = run_code(src, language=language, stdin=stdin)
    assert r.ok and r.stdout == out, r


def test_unknown_language_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown sandbox language"):
        run_code("x", language="cobol")


# ---------------------------------------------------------------------------- policy


@pytest.fixture
def host_without_network_isolation(monkeypatch):
    report = IsolationReport(
        layers=("mount", "pid", "uid"), errors={"net": "Operation not permitted"}, root=True
    )
    monkeypatch.setattr(iso, "isolation_report", lambda: report)
    monkeypatch.delenv(ALLOW_UNISOLATED_ENV, raising=False)
    return report


def test_refuses_without_network_isolation(host_without_network_isolation):
    with pytest.raises(IsolationUnavailableError) as info:
        select_layers()
    message = str(info.value)
    assert "network namespace" in message and "Operation not permitted" in message
    assert "allow_unisolated=True" in message and ALLOW_UNISOLATED_ENV in message


@pytest.mark.parametrize("how", ["argument", "env"])
def test_opt_in_runs_with_what_there_is(host_without_network_isolation, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")
        assert select_layers() == ("mount", "pid", "uid")
    else:
        assert select_layers(allow_unisolated=True) == ("mount", "pid", "uid")
    with pytest.raises(IsolationUnavailableError):
        select_layers(allow_unisolated=False)


def test_requested_layers_are_checked(host_without_network_isolation):
    with pytest.raises(ConfigError, match="unknown isolation layers"):
        select_layers(layers=("net", "chroot"))
    with pytest.raises(IsolationUnavailableError, match="not available"):
        select_layers(layers=("net", "mount"))
    with pytest.raises(IsolationUnavailableError, match="refusing"):
        select_layers(layers=("mount", "uid"))
    assert select_layers(allow_unisolated=True, layers=("uid",)) == ("uid",)


@needs_isolation
def test_weaker_layers_on_request_are_reported():
    # not tmp_path: its parent is 0700, and without a mount namespace nothing exposes it
    workdir = tempfile.mkdtemp(prefix="rewardkit-test-")
    try:
        with open(os.path.join(workdir, "main.py"), "w") as f:
            f.write("import os\nprint(os.getpid() != 1)\n")
        r = run_process(
            ["python3", "-I", "main.py"], workdir, layers=("net", "uid"), allow_unisolated=True
        )
    finally:
        shutil.rmtree(workdir)
    assert r.isolation == ("net", "uid")
    assert r.stdout == "True\n", r


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cpu_seconds": 0},
        {"wall_seconds": -1},
        {"memory_mb": 0},
        {"max_processes": 1.5},
        {"max_open_files": 4},
        {"max_output_bytes": True},
    ],
)
def test_limits_are_validated(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        SandboxLimits(**kwargs)


@pytest.mark.parametrize(
    ("result", "status", "ok"),
    [
        (ExecResult("", "", 0), "ok", True),
        (ExecResult("", "", 2), "exit_2", False),
        (ExecResult("", "", None, signal=9), "signal_9", False),
        (ExecResult("", "", None, signal=9, timed_out=True), "timeout", False),
        (ExecResult("", "", 0, output_truncated=True), "output_limit", False),
        (ExecResult("", "", None, error="boom"), "error", False),
    ],
)
def test_exec_result_status(result, status, ok):
    assert (result.status, result.ok) == (status, ok)


def test_public_api():
    import rewardkit.sandbox as sandbox

    assert set(sandbox.__all__) == {
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
    }
    assert all(hasattr(sandbox, name) for name in sandbox.__all__)


def test_non_linux_hosts_are_refused_even_with_opt_in(monkeypatch):
    monkeypatch.setattr(iso.sys, "platform", "darwin")
    with pytest.raises(IsolationUnavailableError, match="needs Linux"):
        select_layers(allow_unisolated=True)


def test_no_layers_at_all_still_bounds_time_and_kills_the_group():
    """What a locked-down container with the opt-in gets: rlimits, deadline, process group."""
    r = run_code("print(1)", layers=(), allow_unisolated=True)
    assert r.ok and r.stdout == "1\n" and r.isolation == ()
    r = run_code(
        "import time\ntime.sleep(30)\n",
        layers=(),
        allow_unisolated=True,
        limits=SandboxLimits(wall_seconds=1),
    )
    assert r.timed_out and r.wall_time < 5
    with pytest.raises(IsolationUnavailableError, match="refusing"):
        run_code("print(1)", layers=(), allow_unisolated=False)
