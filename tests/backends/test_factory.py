"""build_backend, the lazy package exports and the public surface of rewardkit.backends."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import rewardkit.backends as backends
from rewardkit.backends import build_backend
from rewardkit.backends.http import HTTPBackend
from rewardkit.backends.mock import MockBackend
from rewardkit.errors import ConfigError, MissingDependencyError

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.parametrize("kind", ["http", "HTTP", "openai", "vllm", "sglang"])
def test_http_kinds_and_aliases(kind: str) -> None:
    backend = build_backend(
        kind, base_url=["http://a:1/v1", "http://b:2"], model="judge", concurrency=8
    )
    assert isinstance(backend, HTTPBackend)
    assert backend.endpoints == ["http://a:1/v1/chat/completions", "http://b:2/v1/chat/completions"]
    assert (backend.model, backend.concurrency) == ("judge", 8)


def test_mock_kind() -> None:
    backend = build_backend("mock", outputs=["x"], model="m")
    assert isinstance(backend, MockBackend) and backend.model == "m"


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python not installed")
@pytest.mark.parametrize("kind", ["llama_cpp", "llama.cpp", "llama-cpp"])
def test_llama_cpp_model_option_means_the_model_to_load(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gguf = tmp_path / "judge.gguf"
    gguf.write_bytes(b"GGUF")
    backend = build_backend(kind, model=str(gguf), n_ctx=256)
    assert backend.model == "judge"  # the file's stem; nothing is loaded until first use
    with pytest.raises(ConfigError, match="not both"):
        build_backend(kind, model=str(gguf), model_path_or_id=str(gguf))


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (
            "gemini",
            {},
            "unknown backend 'gemini'; choose one of http, llama_cpp, transformers, mock",
        ),
        (
            "http",
            {"base_urls": "http://a:1"},
            "unknown option 'base_urls' \\(did you mean 'base_url'\\?\\); valid options: .*api_key",
        ),
        ("http", {"retries": 3}, "unknown option 'retries'.*max_retries"),
        ("http", {"concurrency": 0}, "concurrency must be >= 1"),
        ("mock", {}, "missing required option\\(s\\): outputs"),
        ("transformers", {}, "missing required option\\(s\\): model"),
        ("transformers", {"model": "x", "devise": "cpu"}, "did you mean 'device'"),
    ],
)
def test_bad_kinds_and_options_raise_config_error(
    kind: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_backend(kind, **options)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardkit.backends import transformers as tb

    real = importlib.util.find_spec
    monkeypatch.setattr(
        tb.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "transformers" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'rewardkit\[hf\]'"):
        build_backend("transformers", model="some/model")


def test_public_names() -> None:
    assert set(backends.__all__) == {
        "Backend", "Completion", "Constraint", "GenerateRequest", "TokenLogprob",
        "HTTPBackend", "LlamaCppBackend", "LlamaServer", "MockBackend", "TransformersBackend",
        "available_backends", "build_backend", "default_judge_model", "resolve_gguf",
        "start_llama_server",
        # the test transport and scripted server, for users testing judge code
        "AiohttpTransport", "HTTPRequest", "HTTPResponse", "MockTransport", "Transport",
        "ScriptedServer",
    }  # fmt: skip
    for name in backends.__all__:
        assert getattr(backends, name) is not None
    assert backends.available_backends() == ["http", "llama_cpp", "transformers", "mock"]
    with pytest.raises(AttributeError):
        _ = backends.NoSuchBackend  # type: ignore[attr-defined]


def test_importing_backends_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, rewardkit.backends as b, rewardkit.testing;"
        "b.build_backend('mock', outputs=['x']); b.build_backend('http');"
        "print(sorted(m for m in ('torch', 'transformers', 'llama_cpp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
