"""`rewardkit serve` start-up: workers warm before the port opens; timeout flags reach uvicorn."""

from __future__ import annotations

from typing import Any

import pytest

from rewardkit.cli.main import main
from rewardkit.rules.math import MathReward


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import uvicorn

    runs: list[dict[str, Any]] = []

    def run(app: Any, **options: Any) -> None:
        # What a request would find at the moment the port opens.
        rewards = [reward for _, reward in app.state.service.scorer._rewards]
        live = [
            len(r._pool.worker_pids()) if isinstance(r, MathReward) and r._pool else 0
            for r in rewards
        ]
        runs.append({"app": app, "live_workers": live, **options})

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv("REWARDKIT_TOKEN", raising=False)
    return runs


@pytest.mark.slow  # starts Math-Verify workers: seconds on a cold machine
def test_math_workers_are_started_before_the_server_listens(
    fake_uvicorn: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--reward", "math", "--arg", "workers=2"]) == 0
    assert fake_uvicorn[0]["live_workers"] == [2]
    assert "starting reward workers" in capsys.readouterr().err


def test_timeout_flags_reach_uvicorn_and_the_app(fake_uvicorn: list[dict[str, Any]]) -> None:
    argv = ["serve", "--reward", "think_format", "--header-timeout", "3", "--body-timeout", "4"]
    assert main([*argv, "--keep-alive-timeout", "2.5"]) == 0
    run = fake_uvicorn[0]
    assert run["timeout_keep_alive"] == 2.5
    assert run["http"].header_timeout == 3.0  # uvicorn's protocol class, with the deadline
    assert run["app"].state.service.config.body_timeout_s == 4.0


def test_default_timeouts_bound_slow_clients(fake_uvicorn: list[dict[str, Any]]) -> None:
    assert main(["serve", "--reward", "think_format"]) == 0
    run = fake_uvicorn[0]
    assert run["http"].header_timeout == 10.0 and run["timeout_keep_alive"] == 5.0
    assert run["app"].state.service.config.body_timeout_s == 60.0


@pytest.mark.parametrize("flag", ["--header-timeout", "--body-timeout", "--keep-alive-timeout"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "4000"])
def test_bad_timeouts_are_one_line_errors(
    fake_uvicorn: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    assert main(["serve", "--reward", "think_format", flag, value]) == 2
    err = capsys.readouterr().err
    assert "must be within (0, 3600]" in err and "Traceback" not in err
    assert fake_uvicorn == []
