"""The program sees only what running it needs: every host secret it tries to read is absent.

Each attack plants a random token where a hostile policy would look for it (the way a
program that finds its own test case in the dataset prints the expected answer), makes
it world-readable, and checks the token never comes back in anything the run returns.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardkit.sandbox import SandboxLimits, run_code

pytestmark = pytest.mark.usefixtures("full_isolation")

REPO = Path(__file__).resolve().parents[2]


def _world_readable_dir(parent: str) -> str:
    path = tempfile.mkdtemp(prefix="rewardkit-secret-", dir=parent)
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def plant(monkeypatch) -> Iterator:
    """plant(where) -> (absolute path of a world-readable file holding a token, token)."""
    made: list[str] = []

    def plant(where: str) -> tuple[str, str]:
        token = f"SECRET-{uuid.uuid4().hex}"
        name = f".rewardkit-secret-{uuid.uuid4().hex}"
        if where == "tmp":
            path = os.path.join(_world_readable_dir("/tmp"), "key.txt")
        elif where == "cwd":
            cwd = _world_readable_dir("/tmp")
            monkeypatch.chdir(cwd)
            made.append(cwd)
            path = os.path.join(cwd, "spec.yaml")
            token = f"api_key: {token}"
        elif where == "project":
            path = str(REPO / name)
        elif where == "home":
            path = os.path.join(os.path.expanduser("~"), name)
        elif where == "dataset":
            path = os.path.join(_world_readable_dir("/tmp"), "dataset.jsonl")
            token = f'{{"input": "1 2\\n", "output": "{token}"}}'
        else:  # pragma: no cover - a typo in the table
            raise ValueError(where)
        Path(path).write_text(token + "\n")
        os.chmod(path, 0o644)
        made.append(path)
        return path, token

    yield plant
    for path in made:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            parent = os.path.dirname(path)
            Path(path).unlink(missing_ok=True)
            if os.path.basename(parent).startswith("rewardkit-secret-"):
                shutil.rmtree(parent, ignore_errors=True)


READ = textwrap.dedent(
    """
    import os, sys
    for path in sys.argv[1:] or {paths!r}:
        for attempt in (path, os.path.join(os.path.dirname(path), ".")):
            try:
                if os.path.isdir(attempt):
                    print(attempt, sorted(os.listdir(attempt)))
                else:
                    print(open(attempt).read())
            except OSError as exc:
                print("denied", attempt, exc.errno)
    """
)


@pytest.mark.parametrize("where", ["tmp", "cwd", "project", "home", "dataset"])
def test_host_files_are_not_readable(plant, where):
    path, token = plant(where)
    if where == "home" and not os.stat(os.path.dirname(path)).st_mode & stat.S_IXOTH:
        os.chmod(os.path.dirname(path), os.stat(os.path.dirname(path)).st_mode | 0o001)
        restore = True  # make $HOME traversable, as it is on most desktops
    else:
        restore = False
    try:
        r = run_code(READ.format(paths=[path]))
    finally:
        if restore:
            os.chmod(os.path.dirname(path), os.stat(os.path.dirname(path)).st_mode & ~0o001)
    assert r.ok, r
    assert token not in r.stdout + r.stderr
    assert os.path.basename(path) not in r.stdout.replace(path, "")  # not even its name
    assert "denied" in r.stdout


def test_root_shows_only_the_minimal_view():
    src = textwrap.dedent(
        """
        import json, os
        def ls(p):
            try:
                return sorted(os.listdir(p))
            except OSError:
                return None
        print(json.dumps({p: ls(p) for p in ("/", "/etc", "/tmp", "/dev", "/home", "/root")}))
        print(os.getcwd())
        """
    )
    r = run_code(src)
    assert r.ok, r
    import json

    seen = json.loads(r.stdout.splitlines()[0])
    workdir = r.stdout.splitlines()[1]
    prefixes = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    tops = {p.split("/")[1] for p in prefixes} | {workdir.split("/")[1]}
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc"}
    assert set(seen["/"]) <= system | tops, seen["/"]
    assert set(seen["/etc"]) <= {
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "alternatives",
        "localtime",
    }
    assert "passwd" not in seen["/etc"] and "hostname" not in seen["/etc"]
    if workdir.startswith("/tmp/"):
        # nothing of the host's /tmp: the run's own workdir, and the folder of an interpreter
        # installed under /tmp (a venv in a clone there), which the view must expose
        interpreters = {p.split("/")[2] for p in prefixes if p.startswith("/tmp/")}
        assert set(seen["/tmp"]) == {workdir.split("/")[2]} | interpreters, seen["/tmp"]
    assert seen["/home"] is None or seen["/home"] == []
    assert seen["/root"] is None or set(seen["/root"]) <= {".pyenv", ".local"}
    assert set(seen["/dev"]) == {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "shm",
        "fd",
        "stdin",
        "stdout",
        "stderr",
    }


def test_interpreter_prefix_is_bound_not_its_home():
    """The Python under /root/.pyenv runs; the rest of /root does not exist in the view."""
    prefix = os.path.realpath(sys.base_prefix)
    r = run_code(
        "import os, sys\nprint(sys.base_prefix)\n"
        "print(sorted(os.listdir(os.path.dirname(sys.base_prefix))))\n"
    )
    assert r.ok, r
    base, siblings = r.stdout.splitlines()
    assert os.path.realpath(base) == prefix
    assert eval(siblings) == [os.path.basename(prefix)]  # other versions/files stay hidden


def test_devices_and_view_are_usable_and_read_only():
    src = textwrap.dedent(
        """
        import os
        with open("/dev/null", "w") as f:
            f.write("x")
        assert len(open("/dev/urandom", "rb").read(16)) == 16
        assert open("/dev/zero", "rb").read(4) == bytes(4)
        for path in ("/usr/evil", "/newdir", "/dev/evil", "/etc/evil"):
            try:
                open(path, "w")
                print("wrote", path)
            except OSError as exc:
                print("denied", exc.errno)
        print(os.readlink("/proc/self/cwd") == os.getcwd())
        """
    )
    r = run_code(src)
    assert r.ok, r
    assert r.stdout.count("denied") == 4 and "wrote" not in r.stdout
    assert r.stdout.splitlines()[-1] == "True"


def test_python_runs_stdlib_and_multiprocessing():
    src = textwrap.dedent(
        """
        import asyncio, ctypes, decimal, hashlib, json, sqlite3, ssl, zlib
        import multiprocessing as mp
        def square(x):
            return x * x
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                print(sum(pool.map(square, range(10))))
            print(sqlite3.connect(":memory:").execute("select 6*7").fetchone()[0])
        """
    )
    r = run_code(src, limits=SandboxLimits(max_processes=16))
    assert r.ok, r
    assert r.stdout.split() == ["285", "42"]


def test_explicit_expose_makes_a_host_path_readable(plant):
    path, token = plant("dataset")
    from rewardkit.sandbox import run_process

    workdir = tempfile.mkdtemp(prefix="rewardkit-test-")
    try:
        Path(workdir, "main.py").write_text(f"print(open({path!r}).read())\n")
        r = run_process([sys.executable, "-I", "main.py"], workdir, expose=[path])
    finally:
        shutil.rmtree(workdir)
    assert r.ok, r
    assert token in r.stdout


def test_details_carry_numbers_never_program_output():
    """What callers put in reward details: the program's text stays in the capped stdout."""
    token = f"REF-{uuid.uuid4().hex}"
    src = f"import sys\nprint({token!r} * 1000)\nprint({token!r}, file=sys.stderr)\n"
    r = run_code(src, limits=SandboxLimits(max_output_bytes=4096))
    assert r.output_truncated
    assert len(r.stdout.encode()) + len(r.stderr.encode()) <= 4096
    assert token not in repr(r.details) and token not in (r.error or "")
    assert all(v is None or isinstance(v, int | float | bool) for v in r.details.values())
