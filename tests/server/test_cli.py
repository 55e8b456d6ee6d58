"""`rewardkit serve`: flags, errors as one-line messages, and a real uvicorn subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rewardkit.cli.main import main
from rewardkit.errors import ConfigError
from rewardkit.server.config import ServerConfig, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "options",
    [{"token": " "}, {"max_batch": 0}, {"batch_window_s": -1}, {"fill_value": float("nan")}],
)
def test_server_config_rejects(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ServerConfig(**options)


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import uvicorn

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append({"app": app, **kw}))
    monkeypatch.delenv("REWARDKIT_TOKEN", raising=False)
    return runs


def test_serve_public_host_without_token_warns(
    fake_uvicorn: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--reward", "think_format", "--host", "0.0.0.0", "--port", "5123"]) == 0
    assert fake_uvicorn[0]["host"] == "0.0.0.0" and fake_uvicorn[0]["port"] == 5123
    assert "without a token" in capsys.readouterr().err


def test_serve_token_from_env_no_warning(
    fake_uvicorn: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REWARDKIT_TOKEN", "abc")
    assert (
        main(["serve", "--reward", "think_format", "--host", "0.0.0.0", "--max-body-mb", "2"]) == 0
    )
    service = fake_uvicorn[0]["app"].state.service
    assert service.config.token == "abc"
    assert service.config.max_body_bytes == 2 * 2**20
    assert "without a token" not in capsys.readouterr().err


def test_serve_default_host_is_loopback(fake_uvicorn: list[dict[str, Any]]) -> None:
    assert main(["serve", "--reward", "think_format", "--arg", "opened=true"]) == 0
    assert fake_uvicorn[0]["app"].state.service.scorer.spec.rewards[0].args == {"opened": True}
    assert fake_uvicorn[0]["host"] == "127.0.0.1"
    assert fake_uvicorn[0]["port"] == 5000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--spec", "/nonexistent/spec.yaml"], "spec file not found"),
        (["serve", "--reward", "no_such_reward"], "unknown reward"),
        (["serve", "--reward", "think_format", "--arg", "bogus=1"], "bad options"),
        (["serve", "--reward", "think_format", "--arg", "novalue"], "KEY=VALUE"),
        (["serve", "--spec", "x.yaml", "--arg", "a=1"], "--arg applies to --reward"),
        (["serve", "--reward", "think_format", "--port", "70000"], "--port"),
        (["serve", "--reward", "think_format", "--max-batch", "0"], "max_batch"),
    ],
)
def test_serve_user_errors_are_one_line(
    fake_uvicorn: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert fake_uvicorn == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_real_server_subprocess(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: think_format\n    weight: 2.0\n")
    port = _free_port()
    env = {**os.environ, "REWARDKIT_TOKEN": "tok"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rewardkit.cli.main",
            "serve",
            "--spec",
            str(spec),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "server did not start within 30 s"
            time.sleep(0.1)
        prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        payload = {
            "query": [prompt + "<think>hm</think> hello<|im_end|>", prompt + "hello<|im_end|>"],
            "prompts": [prompt, prompt],
            "labels": [None, None],
        }
        assert httpx.post(f"{base}/get_reward", json=payload, timeout=10).status_code == 401
        resp = httpx.post(
            f"{base}/get_reward", json=payload, headers={"Authorization": "Bearer tok"}, timeout=10
        )
        assert resp.status_code == 200
        assert resp.json()["rewards"] == [2.0, 0.0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
