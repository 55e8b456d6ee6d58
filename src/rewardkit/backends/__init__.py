"""Where judge text comes from: OpenAI-compatible HTTP, llama.cpp, transformers, mock.

Backend classes are exported lazily: `import rewardkit.backends` must not import
aiohttp sessions, torch, transformers or llama_cpp until a class is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rewardkit.backends.base import Backend, Completion, Constraint, GenerateRequest, TokenLogprob

if TYPE_CHECKING:
    from rewardkit.backends.factory import available_backends, build_backend
    from rewardkit.backends.http import HTTPBackend
    from rewardkit.backends.llama_cpp import LlamaCppBackend, LlamaServer, start_llama_server
    from rewardkit.backends.mock import MockBackend
    from rewardkit.backends.models import default_judge_model, resolve_gguf
    from rewardkit.backends.transformers import TransformersBackend

__all__ = [
    "Backend",
    "Completion",
    "Constraint",
    "GenerateRequest",
    "HTTPBackend",
    "LlamaCppBackend",
    "LlamaServer",
    "MockBackend",
    "TokenLogprob",
    "TransformersBackend",
    "available_backends",
    "build_backend",
    "default_judge_model",
    "resolve_gguf",
    "start_llama_server",
]

# public name -> submodule that defines it; imported on first attribute access.
_LAZY = {
    "HTTPBackend": "http",
    "LlamaCppBackend": "llama_cpp",
    "LlamaServer": "llama_cpp",
    "start_llama_server": "llama_cpp",
    "MockBackend": "mock",
    "TransformersBackend": "transformers",
    "available_backends": "factory",
    "build_backend": "factory",
    "default_judge_model": "models",
    "resolve_gguf": "models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rewardkit.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rewardkit.backends.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
