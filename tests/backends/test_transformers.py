"""TransformersBackend with a tiny random Llama and a tokenizer trained here, in a tmp dir.

The model is random: tests check shapes and semantics (n, seeds, greedy, stop, logprobs),
never what it says.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.errors import ConfigError, MissingDependencyError

pytest.importorskip("torch")
pytest.importorskip("transformers")

# Importing torch and transformers alone takes seconds on a busy machine.
pytestmark = pytest.mark.slow

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The answer is correct because two plus two is four.",
    "Scores: \\boxed{7, 3}. Response 1 is better than response 2.",
    "Specific Criteria: correctness, clarity, brevity. Analysis follows.",
] * 20


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "<|im_end|>", "<|im_start|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=320,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def backend(tiny_model: Path):  # type: ignore[no-untyped-def]
    from rewardkit.backends.transformers import TransformersBackend

    return TransformersBackend(tiny_model, device="auto", model_name="tiny")


def ask(n: int = 1, **kwargs: object) -> GenerateRequest:
    messages = ({"role": "system", "content": "Judge."}, {"role": "user", "content": "Is 2+2=4?"})
    options: dict[str, object] = {"max_tokens": 6, "temperature": 1.0, **kwargs}
    return GenerateRequest(messages=messages, n=n, **options)  # type: ignore[arg-type]


async def test_n_samples_in_one_batch_with_max_tokens(backend) -> None:  # type: ignore[no-untyped-def]
    out = await backend.generate(ask(n=4, seed=1, top_logprobs=1))
    await backend.aclose()
    assert len(out) == 4
    for c in out:
        assert isinstance(c.text, str) and c.finish_reason in ("stop", "length")
        assert c.logprobs is not None and len(c.logprobs) <= 6
        if c.finish_reason == "length":
            assert len(c.logprobs) == 6


async def test_chat_template_is_applied(backend) -> None:  # type: ignore[no-untyped-def]
    prompt = backend.render_prompt(ask().messages)
    assert prompt == (
        "<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\nIs 2+2=4?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


async def test_seed_reproduces_samples_and_samples_differ(backend) -> None:  # type: ignore[no-untyped-def]
    a = [c.text for c in await backend.generate(ask(n=3, seed=5))]
    b = [c.text for c in await backend.generate(ask(n=3, seed=5))]
    c = [c.text for c in await backend.generate(ask(n=3, seed=6))]
    assert a == b
    assert a != c
    assert len(set(a)) > 1  # num_return_sequences samples independently


async def test_greedy_is_deterministic_and_identical_across_n(backend) -> None:  # type: ignore[no-untyped-def]
    out = await backend.generate(ask(n=3, temperature=0.0))
    again = await backend.generate(ask(n=1, temperature=0.0, seed=99))
    assert len({c.text for c in out}) == 1
    assert again[0].text == out[0].text


async def test_logprobs_are_normalised_and_greedy_picks_the_top(backend) -> None:  # type: ignore[no-untyped-def]
    (c,) = await backend.generate(ask(temperature=0.0, top_logprobs=3))
    assert c.logprobs
    for t in c.logprobs:
        assert len(t.top) == 3
        assert t.logprob <= 0 and all(v <= 0 for v in t.top.values())
        assert math.isclose(t.logprob, max(t.top.values()), abs_tol=1e-5)
        assert sum(math.exp(v) for v in t.top.values()) <= 1 + 1e-5
    assert (await backend.generate(ask()))[0].logprobs is None  # only when asked


async def test_stop_string_truncates(backend) -> None:  # type: ignore[no-untyped-def]
    (full,) = await backend.generate(ask(temperature=0.0, max_tokens=12))
    text = full.text
    assert len(text) >= 6
    stop = text[3:5]
    (cut,) = await backend.generate(ask(temperature=0.0, max_tokens=12, stop=(stop,)))
    assert cut.text == text[: text.find(stop)]
    assert cut.finish_reason == "stop"


async def test_eos_ends_a_sample_with_finish_stop(backend) -> None:  # type: ignore[no-untyped-def]
    (full,) = await backend.generate(ask(temperature=0.0, top_logprobs=1))
    assert full.logprobs
    first = backend._tokenizer.convert_tokens_to_ids(
        backend._tokenizer.tokenize(full.logprobs[0].token)
    )[0]
    # Make the greedy first token an end-of-sequence token: the sample must end there.
    backend._lm.generation_config.eos_token_id = [backend._tokenizer.eos_token_id, first]
    (c,) = await backend.generate(ask(temperature=0.0))
    assert (c.text, c.finish_reason) == ("", "stop")


async def test_pickles_without_the_model(backend) -> None:  # type: ignore[no-untyped-def]
    await backend.generate(ask())
    clone = pickle.loads(pickle.dumps(backend))
    assert clone._lm is None and clone.model == "tiny"
    assert len(await clone.generate(ask(n=2))) == 2
    await clone.aclose()


def test_options_are_validated(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardkit.backends import transformers as tb

    with pytest.raises(ConfigError, match="dtype"):
        tb.TransformersBackend(tiny_model, dtype="float8")  # type: ignore[arg-type]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        tb.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"rewardkit\[hf\]"):
        tb.TransformersBackend(tiny_model)
