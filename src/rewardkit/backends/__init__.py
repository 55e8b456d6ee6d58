"""Where judge text comes from: OpenAI-compatible HTTP, llama.cpp, transformers, mock.

Backend classes are exported lazily: `import rewardkit.backends` must not import
aiohttp sessions, torch, transformers or llama_cpp until a class is actually used.

For tests, the HTTP backend's transports are here too: `HTTPBackend(url,
transport=MockTransport(handler))` answers from `handler(HTTPRequest) -> HTTPResponse`
without sockets, and `ScriptedServer` is such a handler that speaks chat completions and
misbehaves on cue (`rewardkit.testing.Fault`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardkit._lazy import load_lazy as _load_lazy
from rewardkit.backends.base import Backend, Completion, Constraint, GenerateRequest, TokenLogprob

if TYPE_CHECKING:
    from rewardkit.backends.factory import available_backends, build_backend
    from rewardkit.backends.http import HTTPBackend
    from rewardkit.backends.llama_cpp import LlamaCppBackend, LlamaServer, start_llama_server
    from rewardkit.backends.mock import MockBackend
    from rewardkit.backends.models import default_judge_model, resolve_gguf
    from rewardkit.backends.scripted import ScriptedServer
    from rewardkit.backends.transformers import TransformersBackend
    from rewardkit.backends.transport import (
        AiohttpTransport,
        HTTPRequest,
        HTTPResponse,
        MockTransport,
        Transport,
    )

__all__ = [
    "AiohttpTransport",
    "Backend",
    "Completion",
    "Constraint",
    "GenerateRequest",
    "HTTPBackend",
    "HTTPRequest",
    "HTTPResponse",
    "LlamaCppBackend",
    "LlamaServer",
    "MockBackend",
    "MockTransport",
    "ScriptedServer",
    "TokenLogprob",
    "TransformersBackend",
    "Transport",
    "available_backends",
    "build_backend",
    "default_judge_model",
    "resolve_gguf",
    "start_llama_server",
]

# public name -> submodule that defines it; imported on first attribute access.
_LAZY = {
    "HTTPBackend": "rewardkit.backends.http",
    "LlamaCppBackend": "rewardkit.backends.llama_cpp",
    "LlamaServer": "rewardkit.backends.llama_cpp",
    "start_llama_server": "rewardkit.backends.llama_cpp",
    "MockBackend": "rewardkit.backends.mock",
    "TransformersBackend": "rewardkit.backends.transformers",
    "ScriptedServer": "rewardkit.backends.scripted",
    **dict.fromkeys(
        ["AiohttpTransport", "HTTPRequest", "HTTPResponse", "MockTransport", "Transport"],
        "rewardkit.backends.transport",
    ),
    "available_backends": "rewardkit.backends.factory",
    "build_backend": "rewardkit.backends.factory",
    "default_judge_model": "rewardkit.backends.models",
    "resolve_gguf": "rewardkit.backends.models",
}


def __getattr__(name: str) -> Any:
    return _load_lazy(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
