"""Where judge text comes from: OpenAI-compatible HTTP, llama.cpp, transformers, mock."""

from rewardkit.backends.base import Backend, Completion, Constraint, GenerateRequest, TokenLogprob

__all__ = ["Backend", "Completion", "Constraint", "GenerateRequest", "TokenLogprob"]
