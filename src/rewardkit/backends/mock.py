"""A scripted backend for tests: no model, no network, every request recorded.

`MockBackend(["Scores: \\boxed{7, 3}"])` answers every sample with that text;
a list is consumed in order across calls and samples, cycling; a callable gets the
request and the sample index. An item that is an exception instance is raised instead
of answered, so a test can script "fail twice, then succeed".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeAlias

from rewardkit.backends.base import Completion, GenerateRequest
from rewardkit.errors import ConfigError

__all__ = ["MockBackend", "MockOutput"]

# What one scripted sample may be: text, a full completion (to script logprobs or a
# finish_reason), or an exception to raise from `generate`.
MockOutput: TypeAlias = str | Completion | BaseException


class MockBackend:
    """Scripted outputs; `.requests` records every `GenerateRequest` in call order.

    `outputs` is a list (consumed in order, cycling, one item per sample) or a callable
    `(request, sample_index) -> str | Completion` (it may raise). `delay` seconds are slept
    per call, to exercise timeouts and concurrency above the backend.
    """

    def __init__(
        self,
        outputs: Sequence[MockOutput] | Callable[[GenerateRequest, int], str | Completion],
        model: str = "mock",
        *,
        delay: float = 0.0,
    ) -> None:
        if not callable(outputs):
            outputs = list(outputs)
            if not outputs:
                raise ConfigError("MockBackend needs at least one output (or a callable)")
            for item in outputs:
                if not isinstance(item, str | Completion | BaseException):
                    raise ConfigError(
                        "MockBackend outputs must be str, Completion or an exception instance, "
                        f"got {type(item).__name__}"
                    )
        self.outputs = outputs
        self.model = model
        self.delay = delay
        self.requests: list[GenerateRequest] = []
        self.closed = False
        self._cursor = 0  # next index into a list of outputs, shared by all calls

    @property
    def calls(self) -> int:
        """How many times `generate` was called."""
        return len(self.requests)

    def _next(self, request: GenerateRequest, index: int) -> MockOutput:
        if callable(self.outputs):
            return self.outputs(request, index)
        item = self.outputs[self._cursor % len(self.outputs)]
        self._cursor += 1
        return item

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        completions: list[Completion] = []
        for index in range(request.n):
            item = self._next(request, index)
            if isinstance(item, BaseException):
                raise item
            completions.append(
                item if isinstance(item, Completion) else Completion(str(item), "stop")
            )
        return completions

    async def aclose(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"MockBackend(model={self.model!r}, calls={self.calls})"
