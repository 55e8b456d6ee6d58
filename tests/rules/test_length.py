"""Length shaping: DAPO soft overlong punishment and open-r1's n-gram repetition penalty."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from rewardkit.errors import ConfigError
from rewardkit.registry import build_reward
from rewardkit.rules.length import (
    OverlongPenaltyReward,
    RepetitionPenaltyReward,
    overlong_penalty,
    repetition_penalty,
)
from rewardkit.scoring import Scorer
from rewardkit.types import Sample, Score


@pytest.mark.parametrize(
    ("length", "factor", "expected"),
    [
        (0, 1.0, 0.0),
        (80, 1.0, 0.0),  # exactly max - buffer: no penalty yet
        (81, 1.0, -0.05),
        (90, 1.0, -0.5),  # TRL's docstring example: 90 tokens, L_max 100, cache 20
        (100, 1.0, -1.0),
        (101, 1.0, -1.0),
        (10_000, 1.0, -1.0),
        (90, 0.5, -0.25),
        (150, 2.0, -2.0),
    ],
)
def test_overlong_penalty_curve(length: int, factor: float, expected: float) -> None:
    got = overlong_penalty(length, max_length=100, buffer_length=20, penalty_factor=factor)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("unit", "response", "length", "value", "reason"),
    [
        ("chars", "x" * 8, 8, 0.0, "ok"),
        ("chars", "x" * 9, 9, -0.5, "in_buffer"),
        ("chars", "x" * 11, 11, -1.0, "overlong"),
        ("words", "a b c d e f g h i", 9, -0.5, "in_buffer"),
        ("words", "aaaaaaaaaaaaaaaaaaaaaa", 1, 0.0, "ok"),
    ],
)
def test_overlong_reward_units(
    unit: str, response: str, length: int, value: float, reason: str
) -> None:
    reward = OverlongPenaltyReward(max_length=10, buffer_length=2, unit=unit)  # type: ignore[arg-type]
    result = reward.score(Sample(prompt="", response=response))
    assert isinstance(result, Score)
    assert result.value == pytest.approx(value)
    assert result.reason == reason
    assert result.details == {"length": length, "unit": unit}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_length": 0, "buffer_length": 1}, "max_length"),
        ({"max_length": 10, "buffer_length": 0}, "buffer_length"),
        ({"max_length": 10, "buffer_length": 11}, "buffer_length"),
        ({"max_length": 10, "buffer_length": 2, "penalty_factor": -1}, "penalty_factor"),
        ({"max_length": 10, "buffer_length": 2, "unit": "tokens"}, "tokenizer"),
        ({"max_length": 10, "buffer_length": 2, "unit": "bytes"}, "unit"),
        ({"max_length": 10, "buffer_length": 2, "unit": "chars", "tokenizer": "x"}, "tokenizer"),
    ],
)
def test_overlong_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_reward("overlong_penalty", **options)


class _CharTokenizer:
    """A tokenizer object passed directly, as a TRL user already holds one."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text if not c.isspace()]


def test_overlong_counts_tokens_with_a_tokenizer_object() -> None:
    reward = OverlongPenaltyReward(max_length=4, buffer_length=2, tokenizer=_CharTokenizer())
    assert reward.unit == "tokens"
    result = reward.score(Sample(prompt="", response="a b c"))
    assert isinstance(result, Score)
    assert result.details["length"] == 3
    assert result.value == pytest.approx(-0.5)


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "the": 1, "answer": 2, "is": 3, "4": 4}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    path = tmp_path_factory.mktemp("tok")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(
        path
    )
    return path


def test_overlong_loads_a_tokenizer_by_path_lazily_and_pickles_without_it(
    tiny_tokenizer_dir: Path,
) -> None:
    reward = build_reward(
        "overlong_penalty", max_length=4, buffer_length=2, tokenizer=str(tiny_tokenizer_dir)
    )
    assert isinstance(reward, OverlongPenaltyReward)
    assert reward._tokenizer is None  # nothing loaded until the first score
    # "the answer is 4 , really" -> 6 whitespace/punctuation tokens under the tiny vocab
    result = reward.score(Sample(prompt="", response="the answer is 4, really"))
    assert isinstance(result, Score)
    assert result.details == {"length": 6, "unit": "tokens"}
    assert result.value == -1.0
    clone = pickle.loads(pickle.dumps(reward))
    assert clone._tokenizer is None
    assert clone.score(Sample(prompt="", response="the answer")).value == 0.0  # type: ignore[union-attr]


def test_overlong_bad_tokenizer_path_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    reward = OverlongPenaltyReward(max_length=4, buffer_length=2, tokenizer=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="cannot load tokenizer"):
        reward.score(Sample(prompt="", response="x"))


@pytest.mark.parametrize(
    ("text", "n", "penalty", "expected"),
    [
        ("", 3, -1.0, 0.0),
        ("too short", 3, -1.0, 0.0),
        ("the cat sat on the mat", 3, -1.0, 0.0),  # no repeated trigram
        # 4 trigrams, 1 unique: (1 - 1/4) * -1
        ("a a a a a a", 3, -1.0, -0.75),
        ("A a A a A a", 3, -1.0, -0.75),  # lower-cased like open-r1
        # bigrams: (x y)(y x)(x y)(y x)(x y) -> 2 unique of 5
        ("x y x y x y", 2, -0.5, -0.5 * (1 - 2 / 5)),
        # CJK characters count as words: 对对对对 -> 3 bigrams, 1 unique
        ("对对对对", 2, -1.0, -(1 - 1 / 3)),
        ("答案是4答案是4", 2, -1.0, -(1 - 4 / 7)),
    ],
)
def test_repetition_penalty(text: str, n: int, penalty: float, expected: float) -> None:
    assert repetition_penalty(text, ngram_size=n, max_penalty=penalty) == pytest.approx(expected)


def test_repetition_penalty_matches_trl_on_token_ids() -> None:
    # TRL's docstring: ngram 2, [5,5,5,5,5] -> -0.75; the word form must agree.
    assert repetition_penalty("5 5 5 5 5", ngram_size=2) == pytest.approx(-0.75)
    assert repetition_penalty("1 2 3 4", ngram_size=2) == 0.0


def test_repetition_reward_class() -> None:
    reward = build_reward("repetition_penalty", ngram_size=2, max_penalty=-0.5)
    assert isinstance(reward, RepetitionPenaltyReward)
    clone = pickle.loads(pickle.dumps(reward))
    assert (clone.ngram_size, clone.max_penalty) == (2, -0.5)
    looping = clone.score(Sample(prompt="", response="wait wait wait wait"))
    assert isinstance(looping, Score) and looping.reason == "repetitive"
    assert looping.value == pytest.approx(-0.5 * (1 - 1 / 3))
    assert clone.score(Sample(prompt="", response="one two three")) == Score(0.0, "ok")
    for bad, match in [({"max_penalty": 0.1}, "max_penalty"), ({"ngram_size": 0}, "ngram_size")]:
        with pytest.raises(ConfigError, match=match):
            build_reward("repetition_penalty", **bad)


def test_penalties_pass_the_scorer_range_check() -> None:
    spec = {
        "rewards": [
            {
                "reward": "overlong_penalty",
                "args": {"max_length": 10, "buffer_length": 5, "penalty_factor": 3},
            },
            {"reward": "repetition_penalty", "args": {"ngram_size": 1, "max_penalty": -2}},
        ]
    }
    with Scorer(spec) as scorer:
        (report,) = scorer.score([Sample(prompt="", response="no no no no no no")])
    # 17 chars -> -3 (beyond max); unigrams 6 total, 1 unique -> (1 - 1/6) * -2
    assert report.reward == pytest.approx(-3 + -2 * (5 / 6))
