"""The public surface of rewardkit.server, and its lazy FastAPI import."""

from __future__ import annotations

import subprocess
import sys

import rewardkit.server


def test_all_is_what_we_mean() -> None:
    assert sorted(rewardkit.server.__all__) == [
        "Metrics",
        "MicroBatcher",
        "ServerConfig",
        "create_app",
        "extract_response",
        "openrlhf_payload",
        "strip_special_tokens",
    ]
    for name in rewardkit.server.__all__:
        assert getattr(rewardkit.server, name) is not None


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_does_not_load_fastapi() -> None:
    done = _python(
        "import sys, rewardkit.server\n"
        "from rewardkit.server import extract_response, MicroBatcher, Metrics, ServerConfig\n"
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules, 'eager import'\n"
    )
    assert done.returncode == 0, done.stderr


def test_missing_extra_names_the_pip_command() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['fastapi'] = None\n"
        "from rewardkit.errors import MissingDependencyError\n"
        "try:\n"
        "    from rewardkit.server import create_app\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'rewardkit[server]'" in done.stdout, done.stderr


def test_cli_without_uvicorn_is_one_line_error() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['uvicorn'] = None\n"
        "from rewardkit.cli.main import main\n"
        "sys.exit(main(['serve', '--reward', 'think_format']))\n"
    )
    assert done.returncode == 2
    assert "rewardkit[server]" in done.stderr
    assert "Traceback" not in done.stderr
