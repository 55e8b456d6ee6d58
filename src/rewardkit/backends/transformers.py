"""A local Hugging Face transformers judge: chat template, sampled on CPU or GPU.

`n` samples come from one batched `generate` call (`num_return_sequences=n`). Generation
runs on one dedicated worker thread per backend, so the event loop stays free and the
model (not thread-safe under `generate`) is used by one call at a time. The model loads
on first use, in that thread; the backend pickles without it.

Needs the `hf` extra (torch, transformers).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

from rewardkit.backends._local import LocalModelWorker
from rewardkit.backends.base import Completion, GenerateRequest, TokenLogprob
from rewardkit.errors import BackendError, ConfigError, MissingDependencyError

__all__ = ["TransformersBackend"]

DType = Literal["auto", "float32", "float16", "bfloat16"]


class TransformersBackend(LocalModelWorker):
    """A causal LM from the Hub or a local folder, prompted through its chat template.

    `device`: "auto" (cuda, then mps, then cpu) or a torch device string. `dtype`:
    "auto" is bfloat16 on a GPU that supports it, else float32. `chat_template` overrides
    the tokenizer's. Constraints are not enforced here (the judge's parser still validates).
    Logprobs, when a request sets `top_logprobs`, come from the raw (unwarped) logits.
    """

    _thread_name = "transformers"
    _runtime_attrs = ("_lm", "_tokenizer", "_torch_device")

    def __init__(
        self,
        model: str | os.PathLike[str],
        device: str = "auto",
        dtype: DType = "auto",
        *,
        chat_template: str | None = None,
        trust_remote_code: bool = False,
        model_name: str | None = None,
    ) -> None:
        for package in ("torch", "transformers"):
            if importlib.util.find_spec(package) is None:
                raise MissingDependencyError(package, "hf", "the transformers backend")
        if dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ConfigError(
                f"dtype must be 'auto', 'float32', 'float16' or 'bfloat16', got {dtype!r}"
            )
        self.model_id = os.fspath(model)
        self.device = device
        self.dtype: DType = dtype
        self.chat_template = chat_template
        self.trust_remote_code = trust_remote_code
        self.model = model_name or self.model_id.rstrip("/").rsplit("/", 1)[-1]
        self._init_runtime()

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._lm: Any = None
        self._tokenizer: Any = None
        self._torch_device: Any = None

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, device={self.device!r})"

    # -- loading (worker thread) ---------------------------------------------------------
    def _load(self) -> None:
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            if torch.cuda.is_available():
                device = "cuda"
            elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        torch_device = torch.device(device)
        if self.dtype == "auto":
            on_gpu = torch_device.type == "cuda" and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if on_gpu else torch.float32
        else:
            dtype = getattr(torch, self.dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                self.model_id, trust_remote_code=self.trust_remote_code
            )
            lm: Any = AutoModelForCausalLM.from_pretrained(
                self.model_id, dtype=dtype, trust_remote_code=self.trust_remote_code
            )
        except OSError as exc:
            raise BackendError(f"cannot load transformers model {self.model_id!r}: {exc}") from exc
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        if not tokenizer.chat_template:
            raise ConfigError(
                f"tokenizer of {self.model_id!r} has no chat template; pass chat_template=..."
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._lm = lm.to(torch_device).eval()
        self._torch_device = torch_device

    def render_prompt(self, messages: Any) -> str:
        """The exact prompt text the model sees (for debugging templates). Loads the model."""
        self._load()
        text: str = self._tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return text

    # -- generation (worker thread) --------------------------------------------------------
    def _generate_sync(self, request: GenerateRequest, seed: int | None) -> list[Completion]:
        import torch

        self._load()
        tokenizer, lm = self._tokenizer, self._lm
        prompt = tokenizer.apply_chat_template(
            list(request.messages), tokenize=False, add_generation_prompt=True
        )
        # The template already holds any BOS token; adding special tokens would double it.
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(
            self._torch_device
        )
        prompt_len = inputs["input_ids"].shape[1]
        sample = request.temperature > 0
        options: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            # Greedy samples are all the same: decode once and copy (transformers refuses
            # num_return_sequences > 1 without sampling).
            "num_return_sequences": request.n if sample else 1,
            "do_sample": sample,
            "pad_token_id": tokenizer.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": bool(request.top_logprobs),
        }
        if sample:
            options["temperature"] = request.temperature
            options["top_p"] = request.top_p
            options["top_k"] = 0  # OpenAI semantics: no top-k cut unless asked
        else:
            # greedy: unset the sampling defaults a model's generation_config may carry
            options.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            options["stop_strings"] = list(request.stop)
            options["tokenizer"] = tokenizer
        if seed is not None:
            torch.manual_seed(seed)
        try:
            with torch.inference_mode():
                output = lm.generate(**inputs, **options)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"transformers generation failed: {exc}") from exc

        eos_ids = _eos_ids(lm, tokenizer)
        new_tokens = output.sequences[:, prompt_len:].tolist()
        completions = []
        for row, ids in enumerate(new_tokens):
            length, finish = len(ids), "length"
            for i, token_id in enumerate(ids):
                if token_id in eos_ids:
                    length, finish = i, "stop"
                    break
            text = tokenizer.decode(ids[:length], skip_special_tokens=True)
            for stop in request.stop:
                cut = text.find(stop)
                if cut != -1:  # OpenAI semantics: the stop string is not returned
                    text, finish = text[:cut], "stop"
            logprobs = None
            if request.top_logprobs:
                logprobs = _logprobs(
                    output.logits, row, ids[:length], request.top_logprobs, tokenizer
                )
            completions.append(Completion(text=text, finish_reason=finish, logprobs=logprobs))
        if not sample:
            completions *= request.n
        return completions

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        if request.n < 1:
            raise ConfigError(f"n must be >= 1, got {request.n}")
        return await self._on_worker(self._generate_sync, request, request.seed)

    async def aclose(self) -> None:
        await self._stop_worker()
        self._lm = self._tokenizer = None


def _eos_ids(lm: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (lm.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def _logprobs(
    logits: Any, row: int, ids: list[int], k: int, tokenizer: Any
) -> tuple[TokenLogprob, ...]:
    import torch

    def piece(token_id: int) -> str:
        text: str = tokenizer.decode([token_id])
        # A lone byte of a multi-byte character decodes to U+FFFD, and many would collide
        # as dict keys: fall back to the vocabulary's own spelling of the token.
        return str(tokenizer.convert_ids_to_tokens(token_id)) if "\ufffd" in text else text

    out = []
    for step, token_id in enumerate(ids):
        logp = torch.log_softmax(logits[step][row].float(), dim=-1)
        top = torch.topk(logp, k)
        alternatives: dict[str, float] = {}
        for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            key = piece(int(index))
            if key in alternatives:  # two ids that print alike: keep both, distinguishably
                key = str(tokenizer.convert_ids_to_tokens(int(index)))
            alternatives[key] = float(value)
        out.append(
            TokenLogprob(token=piece(token_id), logprob=float(logp[token_id]), top=alternatives)
        )
    return tuple(out)
