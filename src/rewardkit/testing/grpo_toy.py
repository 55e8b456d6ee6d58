"""A toy GRPO task a random tiny model learns on CPU in a few dozen steps.

Used by the tests and by the CPU demo in examples/grpo:

    python -m rewardkit.testing.grpo_toy examples/grpo/tiny-model   # build the model
    rewardkit train grpo --config examples/grpo/config.yaml

The model is a randomly initialised two-layer `LlamaForCausalLM` with a word-level
tokenizer trained in-process by the `tokenizers` library (vocabulary: digits and letters),
and a chat template set by hand. The reward, `TargetTokenReward`, is the fraction of the
completion's words equal to a target ("7"): a random policy scores about 1/40, a policy
that learned to say "7 7 7 ..." scores 1.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import Any

from rewardkit.errors import MissingDependencyError
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score

__all__ = ["TargetTokenReward", "build_tiny_model", "toy_prompts"]

VOCAB_WORDS = [*string.digits, *string.ascii_lowercase, "say", "count", "the", "digit"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}{% endif %}"
)


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
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "transformers", "train", "the toy GRPO model"
        ) from exc

    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.decoder = decoders.WordPiece()  # joins words with single spaces
    raw.train_from_iterator(
        [" ".join(VOCAB_WORDS)],
        trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    if out_dir is not None:
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    return model, tokenizer


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m rewardkit.testing.grpo_toy OUT_DIR")
    build_tiny_model(sys.argv[1])
    print(f"tiny model and tokenizer written to {sys.argv[1]}")
