"""The errors a deadline pool raises, and the one place their messages are worded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewardkit.errors import RewardkitError


class DeadlineExceeded(RewardkitError, TimeoutError):
    """A call ran past its deadline; its worker was killed and will be replaced."""

    def __init__(self, message: str, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class WorkerCrashed(RewardkitError, RuntimeError):
    """A worker process died while running a call (segfault, OOM kill, os._exit)."""


class PoolClosed(RewardkitError, RuntimeError):
    """The pool was closed; build a new one or use `shared_pool()`."""


def fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def crashed(fn: Callable[..., Any], exc: BaseException, closed: bool) -> RewardkitError:
    if closed:
        return PoolClosed("the deadline pool was closed while the call ran")
    return WorkerCrashed(f"the worker running {fn_name(fn)} died ({type(exc).__name__})")
