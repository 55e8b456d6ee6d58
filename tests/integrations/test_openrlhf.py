"""OpenRLHF's `--remote_rm_url` file mode: reward_func(queries, prompts, labels)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from rewardkit.errors import ConfigError
from rewardkit.integrations import openrlhf


@pytest.mark.parametrize(
    ("query", "prompt", "words"),
    [
        ("Q: 2+2?\nA: 4 four", "Q: 2+2?\nA:", 2.0),  # the prompt is a prefix
        (  # decoded with special tokens, as OpenRLHF does: BOS before, EOS after
            "<s><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello there<|im_end|></s>",
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            2.0,
        ),
        (
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\none two three",
            "re-tokenised",
            3.0,
        ),
    ],
)
def test_response_is_cut_from_the_query(
    monkeypatch: pytest.MonkeyPatch, query: str, prompt: str, words: float
) -> None:
    monkeypatch.delenv("REWARDKIT_SPEC", raising=False)
    monkeypatch.setenv("REWARDKIT_REWARD", "h2_length")
    assert list(openrlhf.reward_func([query], [prompt], None)["rewards"]) == [words]


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
    out = module.reward_func(
        [p + r for p, r in zip(prompts, responses, strict=True)], prompts, ["42", "2", None]
    )
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


def test_every_spec_label_is_logged_in_every_batch(tmp_path: Any) -> None:
    spec = {"rewards": [{"reward": "h2_length"}, {"reward": "h2_contains", "when": {"task": "x"}}]}
    from rewardkit.spec import load_spec

    # no sample has a `task` field, so h2_contains applies to none of them
    payload = openrlhf.score_queries(load_spec(spec), ["p a", "p b c"], ["p", "p"], None)
    assert payload["rewards"] == [1.0, 2.0]
    assert payload["extra_logs"]["rewardkit/h2_contains"] == [0.0, 0.0]
    assert payload["extra_logs"]["rewardkit/h2_length"] == [1.0, 2.0]
