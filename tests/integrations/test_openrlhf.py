"""OpenRLHF's `--remote_rm_url` file mode: reward_func(queries, prompts, labels)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from rewardkit.errors import ConfigError
from rewardkit.integrations import openrlhf


@pytest.mark.parametrize(
    ("query", "prompt", "response"),
    [
        ("<user>2+2?<assistant>4", "<user>2+2?<assistant>", "4"),
        (" <user>2+2?<assistant> 4", "<user>2+2?<assistant>", " 4"),  # a stray leading space
        ("4 and 4", "", "4 and 4"),
        ("totally different", "<user>x", "totally different"),
    ],
)
def test_response_from_query(query: str, prompt: str, response: str) -> None:
    assert openrlhf.response_from_query(query, prompt) == response


def _load_as_openrlhf_does() -> Any:
    """OpenRLHF imports the file by path, not by module name."""
    spec = importlib.util.spec_from_file_location("reward_func_module", openrlhf.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reward_func_shape(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "rewards:\n  - reward: h2_contains\n    weight: 2\n  - reward: h2_length\n    weight: 0.5\n"
    )
    monkeypatch.setenv("REWARDKIT_SPEC", str(spec))
    module = _load_as_openrlhf_does()
    prompts = ["Q: 6*7?\nA:", "Q: 1+1?\nA:", "Q: none\nA:"]
    responses = [" 42", " 3 or 4", " x"]
    out = module.reward_func([p + r for p, r in zip(prompts, responses, strict=True)], prompts, ["42", "2", None])
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].dtype == torch.float32
    assert out["rewards"].tolist() == [2.0 + 0.5, 0.0 + 0.5 * 3, 0.0]  # the last is unscored
    assert out["scores"].tolist() == out["rewards"].tolist()
    logs = out["extra_logs"]
    assert logs["rewardkit/unscored"].tolist() == [0.0, 0.0, 1.0]
    assert logs["rewardkit/h2_length"].tolist() == [1.0, 3.0, 1.0]
    # every log is per-sample: OpenRLHF concatenates and splits them with the batch
    assert all(v.shape == (3,) for v in logs.values())


def test_reward_func_by_name_and_without_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REWARDKIT_SPEC", raising=False)
    monkeypatch.setenv("REWARDKIT_REWARD", "h2_length")
    out = openrlhf.reward_func(["p a b"], ["p"], None)
    assert list(out["rewards"]) == [2.0]
    monkeypatch.delenv("REWARDKIT_REWARD")
    with pytest.raises(ConfigError, match="REWARDKIT_SPEC"):
        openrlhf.reward_func(["q"], ["q"], None)


def test_length_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDKIT_REWARD", "h2_length")
    with pytest.raises(ConfigError, match="must match"):
        openrlhf.reward_func(["a", "b"], ["a"], None)
