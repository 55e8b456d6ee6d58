"""Local llama.cpp judges: in-process (`LlamaCppBackend`) or as a server (`start_llama_server`).

In-process generation runs `Llama.create_chat_completion` on one dedicated worker thread
per backend: a llama.cpp context is not thread-safe, and a private single-thread executor
serialises calls without parking waiters in (and starving) the loop's default executor.
`n` samples are `n` sequential calls with seeds `seed, seed+1, ...`.

`start_llama_server` runs llama-cpp-python's OpenAI-compatible server as a subprocess for
the HTTP backend, e.g. to share one model among processes. That server ignores `n` (it
returns one choice); `HTTPBackend` notices and asks again for the rest.

Needs the `llama` extra; on CPUs where the native build crashes, build it portable:
`CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install 'rewardkit[llama]'`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardkit.backends._local import LocalModelWorker
from rewardkit.backends._wire import completion_from_choice
from rewardkit.backends.base import Completion, Constraint, ConstraintKind, GenerateRequest
from rewardkit.backends.models import require_default_judge_model, resolve_gguf
from rewardkit.errors import BackendError, BackendTimeoutError, ConfigError, MissingDependencyError

__all__ = ["LlamaCppBackend", "LlamaServer", "start_llama_server"]


def _model_or_default(model: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    return model if model is not None else require_default_judge_model()


def _require_llama_cpp(feature: str) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependencyError("llama-cpp-python", "llama", feature)


class LlamaCppBackend(LocalModelWorker):
    """A GGUF model run in this process by llama-cpp-python.

    `model_path_or_id` is anything `resolve_gguf` accepts (a path, "smollm2-135m",
    "qwen2.5-coder-0.5b", "org/repo:file.gguf"); by default the best packaged model
    installed (`default_judge_model()`). `model_name` overrides the name used in cache
    keys (default: the file's stem). The model loads on first use, in the
    worker thread, so the backend is cheap to build and pickles without the model.
    `n_threads` (default: llama.cpp's, half the cores) also sets the threads that read the
    prompt unless `n_threads_batch` is given.
    `logprobs=True` keeps logits for every position (llama.cpp needs that to report
    logprobs; it costs n_ctx x vocab floats of memory); without it `top_logprobs` is ignored.
    Regex constraints are not enforced in-process (grammar and json_schema are; a regex
    with a grammar alternative gets the grammar).
    """

    _thread_name = "llama-cpp"
    #: GBNF and JSON schemas are enforced in process; a regex is not.
    constraint_kinds: tuple[ConstraintKind, ...] = ("grammar", "json_schema")
    _runtime_attrs = ("_llama", "_grammars")

    def __init__(
        self,
        model_path_or_id: str | os.PathLike[str] | None = None,
        n_ctx: int = 4096,
        *,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int = 0,
        chat_format: str | None = None,
        logprobs: bool = False,
        model_name: str | None = None,
        verbose: bool = False,
    ) -> None:
        _require_llama_cpp("the llama.cpp backend")
        if n_ctx < 16:
            raise ConfigError(f"n_ctx must be >= 16 tokens, got {n_ctx}")
        self.model_path = resolve_gguf(_model_or_default(model_path_or_id))
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        # llama.cpp reads the prompt with every core by default, whatever n_threads says; a
        # caller who pins n_threads (to share a busy machine) means the prompt too: on a
        # loaded 2-core box a second spinning thread made prompt reading 2x slower, not faster.
        self.n_threads_batch = n_threads if n_threads_batch is None else n_threads_batch
        self.n_gpu_layers = n_gpu_layers
        self.chat_format = chat_format
        self.logprobs = logprobs
        self.verbose = verbose
        self.model = model_name or self.model_path.stem
        self._init_runtime()

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._llama: Any = None
        self._grammars: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model={self.model!r}, path={str(self.model_path)!r})"

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            kwargs: dict[str, Any] = {
                "model_path": str(self.model_path),
                "n_ctx": self.n_ctx,
                "n_gpu_layers": self.n_gpu_layers,
                "logits_all": self.logprobs,
                "verbose": self.verbose,
            }
            if self.n_threads is not None:
                kwargs["n_threads"] = self.n_threads
            if self.n_threads_batch is not None:
                kwargs["n_threads_batch"] = self.n_threads_batch
            if self.chat_format is not None:
                kwargs["chat_format"] = self.chat_format
            try:
                self._llama = Llama(**kwargs)
            except Exception as exc:
                raise BackendError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        return self._llama

    def _constraint_kwargs(self, constraint: Constraint | None) -> dict[str, Any]:
        if constraint is None:
            return {}
        # GBNF is llama.cpp's own: a grammar alternative of a regex is enforced too.
        grammar = next((c for c in constraint.forms() if c.kind == "grammar"), None)
        if grammar is None and constraint.kind != "json_schema":
            return {}
        if grammar is not None:
            text = str(grammar.value)
            if text not in self._grammars:
                from llama_cpp import LlamaGrammar

                _check_grammar(self._llama, text)
                self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
            return {"grammar": self._grammars[text]}
        schema = constraint.value
        if isinstance(schema, str):
            import json

            try:
                schema = json.loads(schema)
            except ValueError as exc:
                raise ConfigError(f"json_schema constraint is not valid JSON: {exc}") from exc
        return {"response_format": {"type": "json_object", "schema": schema}}

    def _generate_sync(self, request: GenerateRequest, seeds: Sequence[int]) -> list[Completion]:
        llama = self._load()
        extra = self._constraint_kwargs(request.constraint)
        want_logprobs = bool(request.top_logprobs) and self.logprobs
        if want_logprobs:
            extra["logprobs"] = True
            extra["top_logprobs"] = request.top_logprobs
        completions = []
        for seed in seeds:
            try:
                result = llama.create_chat_completion(
                    messages=list(request.messages),
                    temperature=request.temperature,
                    top_p=request.top_p,
                    max_tokens=request.max_tokens,
                    stop=list(request.stop),
                    seed=seed,
                    **extra,
                )
            except ValueError as exc:  # e.g. the prompt does not fit n_ctx
                raise BackendError(f"llama.cpp rejected the request: {exc}") from exc
            except Exception as exc:
                raise BackendError(f"llama.cpp generation failed: {exc}") from exc
            completions.append(
                completion_from_choice(
                    result["choices"][0], request.top_logprobs if want_logprobs else None
                )
            )
        return completions

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        if request.n < 1:
            raise ConfigError(f"n must be >= 1, got {request.n}")
        base = request.seed if request.seed is not None else random.randrange(2**31)
        seeds = [(base + i) % 2**32 for i in range(request.n)]
        return await self._on_worker(self._generate_sync, request, seeds)

    async def aclose(self) -> None:
        await self._stop_worker()
        if self._llama is not None:
            with contextlib.suppress(Exception):
                self._llama.close()
            self._llama = None


def _check_grammar(llama: Any, text: str) -> None:
    """Parse a GBNF grammar once, up front: `LlamaGrammar.from_string` does not parse, and
    llama-cpp-python 0.3 segfaults at sampling time on a grammar llama.cpp rejects."""
    import llama_cpp

    try:
        vocab = llama._model.vocab  # private, hence the guard: skip the check if it moves
    except AttributeError:
        return
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if not sampler:
        raise ConfigError(f"invalid GBNF grammar (llama.cpp could not parse it): {text[:200]!r}")
    llama_cpp.llama_sampler_free(sampler)


class LlamaServer:
    """A running `python -m llama_cpp.server`; `.base_url` for `HTTPBackend`, `.close()`."""

    def __init__(
        self, process: subprocess.Popen[bytes], base_url: str, model: str, log: Path
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.model = model
        self.log_path = log

    def backend(self, **options: Any) -> Any:
        """An `HTTPBackend` for this server (options as for `HTTPBackend`)."""
        from rewardkit.backends.http import HTTPBackend

        return HTTPBackend(self.base_url, **{"model": self.model, **options})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LlamaServer(base_url={self.base_url!r}, pid={self.process.pid})"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_llama_server(
    model: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    model_alias: str | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 120.0,
) -> LlamaServer:
    """Start llama-cpp-python's OpenAI-compatible server and wait until it answers.

    Raises `BackendTimeoutError` (with the server's last log lines) when it is not healthy
    within `startup_timeout` seconds, `BackendError` when it exits early.
    """
    _require_llama_cpp("start_llama_server")
    path = resolve_gguf(_model_or_default(model))
    port = port or _free_port(host)
    alias = model_alias or path.stem
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path), "--model_alias", alias,
        "--host", host, "--port", str(port),
        "--n_ctx", str(n_ctx), "--verbose", "False",
    ]  # fmt: skip
    if n_threads is not None:  # the prompt too, as in LlamaCppBackend
        cmd += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    cmd += list(extra_args)
    # A file, not a pipe: nobody reads the server's chatter, and a full pipe would block it.
    fd, log_name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
    log = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    server = LlamaServer(process, f"http://{host}:{port}/v1", alias, log)
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            tail = _tail(log)
            server.close()
            raise BackendError(f"llama.cpp server exited with code {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            tail = _tail(log)
            server.close()
            raise BackendTimeoutError(
                f"llama.cpp server not healthy within {startup_timeout:g} s: {tail}"
            )
        time.sleep(0.2)


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
