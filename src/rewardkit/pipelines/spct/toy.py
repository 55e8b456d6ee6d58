"""Tiny models and a scripted judge, for the SPCT tests and the meta-RM benchmark.

- `shown_responses(prompt)`: the responses of a rendered judge prompt, in shown order
  (what a scripted judge needs to decide its scores).
- `ScriptedJudge`: a `MockBackend` script. Each sample is correct with probability
  `p_correct` (drawn from the request seed and sample index, so runs repeat); a wrong one
  swaps the scores and, with `telltale`, contains a phrase a meta RM can learn.
- `word_tokenizer`, `tiny_llama`, `tiny_causal_lm`, `tiny_classifier`: a word-level tokenizer trained
  in-process on given texts, and random two-layer Llamas on top of it (CPU, seconds).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rewardkit.backends.base import GenerateRequest
from rewardkit.errors import MissingDependencyError

__all__ = [
    "TELLTALE",
    "ScriptedJudge",
    "shown_responses",
    "tiny_causal_lm",
    "tiny_classifier",
    "tiny_llama",
    "word_tokenizer",
]

TELLTALE = "I only skimmed these responses so this is a guess ."
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}{% endif %}"
)
_FENCED = re.compile(
    r"\[BEGIN RESPONSE (\d+) ([0-9a-f]{12})\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.DOTALL
)
_FILLER = [
    "The criteria are accuracy and clarity .",
    "Accuracy weighs most ; clarity matters too .",
    "I check each claim against the query .",
    "Relevance and correctness are the main criteria .",
]


def shown_responses(prompt: str) -> list[str]:
    """The fenced responses of a judge prompt, in the order shown."""
    return [match.group(3) for match in _FENCED.finditer(prompt)]


class ScriptedJudge:
    """`MockBackend(ScriptedJudge(...))`: scores responses that start with "good" 8 and
    the others 3 when it is right; swaps them (and says `TELLTALE`) when it is wrong."""

    def __init__(self, p_correct: float = 0.5, *, telltale: bool = True, seed: int = 0) -> None:
        self.p_correct = p_correct
        self.telltale = telltale
        self.seed = seed

    def __call__(self, request: GenerateRequest, index: int) -> str:
        prompt = request.messages[-1]["content"]
        shown = shown_responses(prompt)
        rng = random.Random(f"{self.seed}:{request.seed}:{index}:{prompt[-200:]}")
        correct = rng.random() < self.p_correct
        good = [text.startswith("good") for text in shown]
        scores = [(8 if g else 3) if correct else (3 if g else 8) for g in good]
        lines = [f"Specific Criteria: {rng.choice(_FILLER)}", f"Analysis: {rng.choice(_FILLER)}"]
        if not correct and self.telltale:
            lines.append(TELLTALE)
        lines.append("Scores: \\boxed{" + ", ".join(str(s) for s in scores) + "}")
        return "\n".join(lines)


def _require() -> tuple[Any, Any]:
    try:
        import tokenizers
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "transformers", "train", "tiny models") from exc
    return tokenizers, transformers


def word_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000) -> Any:
    """A word-level fast tokenizer (whitespace split) trained on `texts`, with a chat template."""
    tokenizers, transformers = _require()
    raw = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    raw.decoder = tokenizers.decoders.WordPiece()  # joins words with single spaces
    raw.train_from_iterator(
        list(texts),
        tokenizers.trainers.WordLevelTrainer(
            vocab_size=vocab_size, special_tokens=["<pad>", "<unk>", "<s>", "</s>"]
        ),
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _llama_config(tokenizer: Any, max_positions: int, **extra: Any) -> Any:
    _, transformers = _require()
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def tiny_llama(tokenizer: Any, *, max_positions: int = 2048, seed: int = 0) -> Any:
    """A random tiny `LlamaForCausalLM` over `tokenizer`'s vocabulary (seeded)."""
    _, transformers = _require()
    import torch

    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(
        _llama_config(tokenizer, max_positions, tie_word_embeddings=True)
    )


def tiny_causal_lm(
    texts: Iterable[str], out_dir: str | Path, *, max_positions: int = 2048, seed: int = 0
) -> Path:
    """A random tiny `LlamaForCausalLM` + word tokenizer saved to `out_dir`."""
    tokenizer = word_tokenizer(texts)
    model = tiny_llama(tokenizer, max_positions=max_positions, seed=seed)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return Path(out_dir)


def tiny_classifier(
    texts: Iterable[str], out_dir: str | Path, *, max_positions: int = 2048, seed: int = 0
) -> Path:
    """A random tiny `LlamaForSequenceClassification` (one label) + word tokenizer."""
    _, transformers = _require()
    import torch

    tokenizer = word_tokenizer(texts)
    torch.manual_seed(seed)
    model = transformers.LlamaForSequenceClassification(
        _llama_config(tokenizer, max_positions, num_labels=1)
    )
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return Path(out_dir)
