"""OpenRLHF's own code (0.10.2 - 0.11.2) driving rewardkit: parser, file loader, HTTP client.

Nothing from OpenRLHF is copied here. The parser is built by running the `add_argument`
statements of the installed `openrlhf/cli/train_ppo_ray.py` (its module-level imports need
GPUs: deepspeed, vLLM); the documented command lines are read from docs/integrations.md
and expanded by bash. Rewards go through OpenRLHF's `SingleTurnAgentExecutor.execute`, the
code its rollout workers run per sample, with a scripted stand-in for the vLLM engine:
once loading our file (`--reward.remote_url x.py`), once POSTing to a real
`rewardkit serve` on loopback. Not covered (GPU/cluster only): Ray actors, vLLM, training.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip(
    "openrlhf", reason="OpenRLHF is not installed (CI: pip install --no-deps openrlhf==0.11.2)"
)
agent = pytest.importorskip(
    "openrlhf.utils.agent", reason="OpenRLHF's agent executor (aiohttp) is not importable"
)

import rewardkit.integrations.openrlhf as rk_openrlhf  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
SPEC_TEXT = "rewards:\n  - reward: math\n    weight: 2\n"


def openrlhf_parser() -> argparse.ArgumentParser:
    """OpenRLHF's train_ppo_ray parser, built by its own statements (up to `parse_args`)."""
    spec = importlib.util.find_spec("openrlhf.cli.train_ppo_ray")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    tree = ast.parse(source)
    [main] = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    # the file's standard-library imports (argparse, os, datetime); the others need GPUs
    body: list[ast.stmt] = [
        n
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        and all(
            (a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
            in sys.stdlib_module_names
            for a in n.names
        )
    ]
    for stmt in main.body:
        if "parser.parse_args(" in ast.unparse(stmt):
            break
        body.append(stmt)
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), spec.origin, "exec"), namespace)
    return namespace["parser"]


def parse(argv: list[str]) -> Any:
    from openrlhf.utils.config import hierarchize

    return hierarchize(openrlhf_parser().parse_args(argv))


def documented_commands() -> list[str]:
    """Each documented `train_ppo_ray` line, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", DOCS.read_text(), re.S)
    lines = [
        line
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if "openrlhf.cli.train_ppo_ray" in line
    ]
    assert len(lines) == 2, "expected the file-mode and the HTTP-mode command in the docs"
    return lines


def expand(command: str) -> list[str]:
    """The arguments bash passes for a documented command (`...` = the user's other flags)."""
    shell = command.replace("python3 -m openrlhf.cli.train_ppo_ray ...", "printf '%s\\n'")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", shell], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.splitlines()


def test_documented_flags_parse_with_openrlhfs_parser() -> None:
    file_cmd, http_cmd = documented_commands()
    args = parse(expand(file_cmd))
    assert args.reward.remote_url == rk_openrlhf.__file__
    assert args.reward.remote_url.endswith(".py")  # OpenRLHF's test for file mode
    assert args.data.label_key == "answer"
    args = parse(expand(http_cmd))
    assert args.reward.remote_url == "http://127.0.0.1:5000/get_reward"


@pytest.mark.parametrize("old", [["--remote_rm_url", "x.py"], ["--label_key", "answer"]])
def test_pre_0_10_2_flags_are_rejected(old: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(old)


def test_documented_dynamic_filtering_range_parses() -> None:
    args = parse(["--algo.dynamic_filtering_enable", "--algo.dynamic_filtering_range", "-1", "2"])
    assert args.algo.dynamic_filtering_enable is True
    assert list(args.algo.dynamic_filtering_range) == [-1.0, 2.0]


# --- rewards through OpenRLHF's rollout executor ---------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("transformers")
    from rewardkit.testing.grpo_toy import build_tiny_model

    _, tok = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    return tok


class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine: 'generates' a fixed response."""

    def __init__(self, tokenizer: Any, response: str) -> None:
        self.ids = tokenizer(response, add_special_tokens=False)["input_ids"]

    async def generate(
        self, prompt_ids: list[int], params: Any, multi_modal_data: Any = None
    ) -> Any:
        del prompt_ids, params, multi_modal_data
        output = SimpleNamespace(token_ids=list(self.ids), finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


def execute(
    executor: Any, tokenizer: Any, prompt: str, response: str, label: str
) -> dict[str, Any]:
    params = SimpleNamespace(max_tokens=16, logprobs=None)
    return asyncio.run(
        executor.execute(prompt, label, params, 64, tokenizer, ScriptedEngine(tokenizer, response))
    )


CASES = [  # (prompt, response, label, reward): math reward, weight 2
    ("say the digit 7", "7", "7", 2.0),
    ("say the digit 7", "3", "7", 0.0),
]


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = tmp_path_factory.mktemp("spec") / "spec.yaml"
    spec.write_text(SPEC_TEXT)
    return spec


def test_python_file_mode_through_openrlhfs_loader(
    monkeypatch: pytest.MonkeyPatch, spec_file: Path, tokenizer: Any
) -> None:
    monkeypatch.setenv("REWARDKIT_SPEC", str(spec_file))
    monkeypatch.delenv("REWARDKIT_REWARD", raising=False)
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=rk_openrlhf.__file__)
    assert executor.reward_func is not None  # OpenRLHF loaded our file as its reward_func
    for prompt, response, label, reward in CASES:
        out = execute(executor, tokenizer, prompt, response, label)
        assert out["reward"] is not None, "OpenRLHF swallowed a reward error (see its log)"
        assert out["reward"].tolist() == [reward]
        assert out["scores"].tolist() == [reward]
        assert out["extra_logs"]["rewardkit/unscored"].tolist() == [0.0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(spec_file: Path) -> Iterator[str]:
    """`rewardkit serve` on loopback (no token: OpenRLHF sends none)."""
    pytest.importorskip("uvicorn")
    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rewardkit.cli.main",
            "serve",
            "--spec",
            str(spec_file),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
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
            assert time.monotonic() < deadline, "rewardkit serve did not start within 30 s"
            time.sleep(0.1)
        yield f"{base}/get_reward"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_http_mode_through_openrlhfs_client(served: str, tokenizer: Any) -> None:
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=[served])
    assert executor.reward_func is None  # a URL: OpenRLHF POSTs instead of loading a file
    for prompt, response, label, reward in CASES:
        out = execute(executor, tokenizer, prompt, response, label)
        assert out["reward"] is not None, "OpenRLHF got no reward from rewardkit serve"
        assert out["reward"] == [reward]
        assert out["scores"] == [reward]
        assert out["extra_logs"]["rewardkit/unscored"] == [0.0]


def test_file_and_http_answers_become_the_same_experience(
    monkeypatch: pytest.MonkeyPatch, spec_file: Path, served: str, tokenizer: Any, vllm_stub: None
) -> None:
    """OpenRLHF turns both answers into the tensors its trainer and dynamic filter read."""
    generator = pytest.importorskip(
        "openrlhf.trainer.ppo_utils.samples_generator",
        reason="OpenRLHF's samples generator (ray, vllm) is not importable",
    )
    monkeypatch.setenv("REWARDKIT_SPEC", str(spec_file))
    file_exec = agent.SingleTurnAgentExecutor(remote_rm_url=rk_openrlhf.__file__)
    http_exec = agent.SingleTurnAgentExecutor(remote_rm_url=[served])
    to_experience = generator.SamplesGenerator._process_response_into_experience
    for prompt, response, label, reward in CASES:
        experiences = [
            to_experience(None, execute(ex, tokenizer, prompt, response, label), max_len=64)
            for ex in (file_exec, http_exec)
        ]
        for e in experiences:
            assert e.rewards.flatten().tolist() == [reward]
            assert e.scores[0].item() == reward  # what dynamic filtering averages
