"""What the in-process backends share: one worker thread per model, and pickling without it.

A local model is not thread-safe and must not block the event loop, so every call runs on
one dedicated thread. Trainers pickle reward functions into worker processes: the model,
the thread and the lock are dropped on pickling and rebuilt (lazily) on the other side.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class LocalModelWorker:
    #: Name of the worker thread, seen in stack dumps.
    _thread_name: ClassVar[str] = "local-model"
    #: Attributes holding the loaded model; dropped on pickling, rebuilt by `_init_runtime`.
    _runtime_attrs: ClassVar[tuple[str, ...]] = ()

    def _init_runtime(self) -> None:
        """Set the model attributes to their unloaded state; subclasses extend it."""
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards the lazy executor creation

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in (*self._runtime_attrs, "_executor", "_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
            return self._executor

    async def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the model's thread without blocking the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), fn, *args)

    async def _stop_worker(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
