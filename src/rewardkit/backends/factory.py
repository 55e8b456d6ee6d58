"""Build a backend by kind name, for specs, the CLI and `JudgeReward(backend="http", ...)`.

    build_backend("http", base_url="http://127.0.0.1:8000/v1", model="qwen")
    build_backend("http", base_url=["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"])
    build_backend("http", base_url="http://127.0.0.1:8080/v1", server_kind="llama_cpp")
    build_backend("llama_cpp", model="smollm2-135m", n_ctx=2048)
    build_backend("transformers", model="Qwen/Qwen2.5-0.5B-Instruct", device="cuda")
    build_backend("mock", outputs=["Scores: \\boxed{7}"])

Options are checked against the backend's constructor before anything heavy is imported
or loaded: a misspelt option is a `ConfigError` naming the valid ones. HTTP's
`server_kind` ("auto", "llama_cpp", "vllm", "sglang", "openai", "generic") picks the
constraint dialect (see `rewardkit.backends.dialects`); its `transport` ("auto" or
"aiohttp", both aiohttp) stays for old configs ("lean" was removed). For the local
backends `model` means the model to load, as it does on the command line.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Literal, get_args

from rewardkit.backends.base import Backend
from rewardkit.errors import ConfigError

__all__ = ["BackendKind", "available_backends", "build_backend"]

BackendKind = Literal["http", "llama_cpp", "transformers", "mock"]

_CLASSES: dict[str, str] = {
    "http": "rewardkit.backends.http:HTTPBackend",
    "llama_cpp": "rewardkit.backends.llama_cpp:LlamaCppBackend",
    "transformers": "rewardkit.backends.transformers:TransformersBackend",
    "mock": "rewardkit.backends.mock:MockBackend",
}
# Spellings people reach for; each maps to one kind.
_ALIASES = {
    "openai": "http",
    "vllm": "http",
    "sglang": "http",
    "llama.cpp": "llama_cpp",
    "llama-cpp": "llama_cpp",
    "llamacpp": "llama_cpp",
    "hf": "transformers",
}
# Option names that mean something else in a constructor: (kind, option) -> parameter.
_RENAMES = {("llama_cpp", "model"): "model_path_or_id"}


def available_backends() -> list[str]:
    """The kinds `build_backend` accepts (aliases aside)."""
    return list(get_args(BackendKind))


def build_backend(kind: BackendKind | str, **options: Any) -> Backend:
    """A configured backend of `kind`; unknown kinds or options raise `ConfigError`.

    A missing optional dependency raises `MissingDependencyError` naming the extra.
    """
    name = _ALIASES.get(str(kind).lower(), str(kind).lower())
    if name not in _CLASSES:
        raise ConfigError(
            f"unknown backend {kind!r}; choose one of {', '.join(available_backends())}"
        )
    for (owner, given), param in _RENAMES.items():
        if owner == name and given in options:
            if param in options:
                raise ConfigError(f"{name} backend: give either {given!r} or {param!r}, not both")
            options[param] = options.pop(given)
    module_name, _, attr = _CLASSES[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    _check_options(name, cls, options)
    backend: Backend = cls(**options)
    return backend


def _check_options(kind: str, cls: type, options: dict[str, Any]) -> None:
    params = {
        p.name: p
        for p in list(inspect.signature(cls).parameters.values())
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    shown = sorted(
        next((g for (o, g), v in _RENAMES.items() if o == kind and v == p), p) for p in params
    )
    for key in options:
        if key not in params:
            close = difflib.get_close_matches(key, shown, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{kind} backend: unknown option {key!r}{hint}; valid options: {', '.join(shown)}"
            )
    missing = [p for p, spec in params.items() if spec.default is spec.empty and p not in options]
    if missing:
        raise ConfigError(f"{kind} backend: missing required option(s): {', '.join(missing)}")
