"""A toy GRPO task a random tiny model learns on CPU in a few dozen steps.

Used by the tests and by the CPU demo in examples/grpo:

    python -m rewardkit.testing.grpo_toy examples/grpo/tiny-model   # build the model
    rewardkit train grpo --config examples/grpo/config.yaml

The model is a randomly initialised two-layer `LlamaForCausalLM` with a word-level
tokenizer trained in-process by the `tokenizers` library (vocabulary: digits and letters),
and a chat template set by hand. The reward, `TargetTokenReward`, is the fraction of the
completion's words equal to a target ("7"): a random policy scores about 1/40, a policy
that learned to say "7 7 7 ..." scores 1.

The judge variant (`train judge-grpo`, examples/spct): `toy_judge_rows` are rl.jsonl rows
(real judge prompts over a "good ..." and a "bad ..." answer, the good one always shown
first) and `build_tiny_judge` a random tiny Llama whose vocabulary holds whole verdicts
(`Scores:\\boxed{8,3}` is one word), so a random policy writes a parseable verdict some of
the time and GRPO has something to reinforce. With the verdict split into three words
(`Scores:`, `\\boxed{8,`, `3}`) no sample in 30 steps of 8 was valid and nothing was
learned: the toy tests the training loop, not a model's ability to discover a format.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import Any

from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score

__all__ = [
    "TargetTokenReward",
    "build_tiny_judge",
    "build_tiny_model",
    "toy_judge_rows",
    "toy_prompts",
]

VOCAB_WORDS = [*string.digits, *string.ascii_lowercase, "say", "count", "the", "digit"]
JUDGE_VOCAB_WORDS = [
    "Scores:\\boxed{8,3}",
    "Scores:\\boxed{3,8}",
    "\\boxed{8,3}",
    "\\boxed{3,8}",
    "good",
    "bad",
]


class TargetTokenReward(Reward):
    """Fraction of the response's whitespace-separated words equal to `target`."""

    name = "target_token"
    value_range = (0.0, 1.0)

    def __init__(self, target: str = "7") -> None:
        self.target = target

    def score(self, sample: Sample) -> RewardResult:
        words = sample.response.split()
        if not words:
            return Score(0.0, "empty")
        hits = sum(word == self.target for word in words)
        return Score(hits / len(words), "fraction")


def toy_prompts(n: int = 8) -> list[str]:
    """Prompts for the toy task (their content does not matter to the reward)."""
    letters = string.ascii_lowercase
    return [f"say the digit {letters[i % 26]}" for i in range(n)]


def build_tiny_model(out_dir: str | Path | None = None, *, seed: int = 0) -> tuple[Any, Any]:
    """A random tiny Llama and its tokenizer; saved to `out_dir` when given."""
    from rewardkit.pipelines.spct.toy import tiny_llama, word_tokenizer

    tokenizer = word_tokenizer([" ".join(VOCAB_WORDS)])
    model = tiny_llama(tokenizer, max_positions=64, seed=seed)
    if out_dir is not None:
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    return model, tokenizer


def toy_judge_rows(n: int = 8) -> list[dict[str, Any]]:
    """`judge-grpo` dataset rows (rl.jsonl form) with the best response always shown first."""
    from rewardkit.judges.templates import PromptBuilder
    from rewardkit.pipelines.spct.experiment import TEMPLATE, make_items
    from rewardkit.pipelines.spct.prompting import render_prompt

    prompts = PromptBuilder.create(template=TEMPLATE)
    rows = []
    for item in make_items(n, 0, "toy-judge-"):
        assert item.best is not None
        prompt = render_prompt(prompts, item, (item.best, 1 - item.best), salt="rl")
        rows.append(
            {
                "id": item.id,
                "prompt": [{"role": "user", "content": prompt.text}],
                "judge_label": prompt.label(item).to_json(),
            }
        )
    return rows


def build_tiny_judge(out_dir: str | Path, *, seed: int = 0) -> Path:
    """A random tiny Llama judge (vocabulary `JUDGE_VOCAB_WORDS`) saved to `out_dir`."""
    from rewardkit.pipelines.spct.toy import tiny_causal_lm

    return tiny_causal_lm([" ".join(JUDGE_VOCAB_WORDS)], out_dir, max_positions=256, seed=seed)


if __name__ == "__main__":
    args = sys.argv[1:]
    judge = args[:1] == ["--judge"]
    if judge:
        args = args[1:]
    if len(args) != 1:
        sys.exit("usage: python -m rewardkit.testing.grpo_toy [--judge] OUT_DIR")
    if judge:
        build_tiny_judge(args[0])
    else:
        build_tiny_model(args[0])
    print(f"tiny {'judge' if judge else 'model'} and tokenizer written to {args[0]}")
