"""The meta reward model: rates each sampled judgment for how likely it is correct.

DeepSeek-GRM guides voting with a small scalar "meta RM" trained to tell a judgment that
agrees with the ground-truth preference from one that does not; only the top `keep`
judgments vote. This module defines

- `MetaRM`, the protocol (`async rate(query, judgments) -> list[float]`);
- `TransformersMetaRM`, a local sequence classifier (extra "hf", imported lazily);
- `RemoteMetaRM`, an HTTP endpoint: POST {"inputs": [text, ...]} -> {"scores": [...]}, through
  the same `Transport` as the judge backend;
- the training data format: `MetaRMRecord` JSONL and `format_meta_input`, the exact text the
  model sees, so training and inference never drift apart.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rewardkit.backends.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AiohttpTransport,
    HTTPRequest,
    Transport,
)
from rewardkit.errors import (
    BackendError,
    BackendHTTPError,
    ConfigError,
    InputError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    from rewardkit.judges.data import JudgeQuery, JudgeResult, Judgment

__all__ = [
    "MetaRM",
    "MetaRMRecord",
    "RemoteMetaRM",
    "TransformersMetaRM",
    "build_meta_rm",
    "format_meta_input",
    "meta_inputs",
    "read_meta_records",
    "records_from_result",
    "write_meta_records",
]


@runtime_checkable
class MetaRM(Protocol):
    """Rates judgments of one query; higher means more likely correct. One rating each."""

    async def rate(self, query: JudgeQuery, judgments: Sequence[Judgment]) -> list[float]: ...


def format_meta_input(prompt: str, shown: Sequence[str], judgment: str) -> str:
    """The text a meta RM reads: the query, the responses in the order the judge saw them,
    and the judge's full output."""
    parts = [f"[Query]\n{prompt}"]
    for position, text in enumerate(shown, start=1):
        parts.append(f"[Response {position}]\n{text}")
    parts.append(f"[Judgment]\n{judgment}")
    return "\n\n".join(parts)


def meta_inputs(query: JudgeQuery, judgments: Sequence[Judgment]) -> list[str]:
    """`format_meta_input` for each judgment of `query` (responses in its shown order).

    `judgment.order` indexes `query.responses` (the judge renumbers a chunk's judgments
    before rating them).
    """
    return [
        format_meta_input(query.prompt, [query.responses[i] for i in j.order], j.text)
        for j in judgments
    ]


class MetaRMRecord(BaseModel):
    """One training example for a meta RM (one line of a JSONL file)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="The user query the judgment is about.")
    responses: list[str] = Field(
        min_length=1, description="The responses in the order the judge saw them."
    )
    judgment: str = Field(description="The judge's full output text.")
    label: int = Field(
        ge=0,
        le=1,
        description="1 when the judgment agreed with the ground-truth preference "
        "(the preferred response scored strictly highest), else 0.",
    )
    id: str | None = Field(default=None, description="The query's id, for grouping.")
    source: str | None = Field(default=None, description="Dataset or judge model it came from.")

    def text(self) -> str:
        """The model input, exactly as at inference."""
        return format_meta_input(self.query, self.responses, self.judgment)


def records_from_result(
    query: JudgeQuery, result: JudgeResult, preferred: int, source: str | None = None
) -> list[MetaRMRecord]:
    """Label every valid judgment of `result` against the ground-truth best response."""
    records = []
    for judgment in result.judgments:
        if judgment.scores is None or preferred not in judgment.order:
            continue
        by_index = dict(zip(judgment.indices, judgment.scores, strict=True))
        best = by_index[preferred]
        agrees = all(best > s for i, s in by_index.items() if i != preferred)
        records.append(
            MetaRMRecord(
                query=query.prompt,
                responses=[query.responses[i] for i in judgment.order],
                judgment=judgment.text,
                label=int(agrees),
                id=query.id,
                source=source,
            )
        )
    return records


def write_meta_records(path: str | Path, records: Iterable[MetaRMRecord]) -> int:
    """Append records as JSONL; returns how many were written."""
    count = 0
    with Path(path).open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
            count += 1
    return count


def read_meta_records(path: str | Path) -> Iterator[MetaRMRecord]:
    """Records from a JSONL file; a bad line raises `InputError` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"meta-RM data not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield MetaRMRecord.model_validate_json(line)
            except ValidationError as exc:
                raise InputError(f"{path}:{number}: not a meta-RM record: {exc}") from exc


def load_sequence_classifier(
    name: str, device: str, feature: str, *, pad_with_eos: bool = False
) -> tuple[Any, Any]:
    """A transformers sequence classifier and its tokenizer, in eval mode on `device`
    (a meta RM, or a scalar reward model under `rewardkit eval`). `pad_with_eos` lends the
    tokenizer its end token for padding when it has no pad token, as reward models need."""
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", "hf", feature) from exc
    tokenizer = AutoTokenizer.from_pretrained(name)
    if pad_with_eos and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(name)
    if pad_with_eos:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return tokenizer, model


def sequence_scores(
    tokenizer: Any,
    model: Any,
    texts: Sequence[str],
    reduce: Callable[[Any], Any],
    *,
    device: str,
    batch_size: int,
    max_length: int,
) -> list[float]:
    """One score per text from a loaded sequence classifier: `batch_size` texts per forward
    pass, no gradients, `reduce` turning a batch's float logits (batch x labels) into one
    value per text (logit 0, a margin, ...)."""
    import torch

    out: list[float] = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        with torch.no_grad():
            logits = model(**encoded).logits.float()
        out.extend(reduce(logits).tolist())
    return out


def _rating(logits: Any) -> Any:
    """One label: its logit; two or more: the margin of label 1 ("correct") over label 0."""
    return logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]


class TransformersMetaRM:
    """A local `AutoModelForSequenceClassification` as meta RM (pip extra "hf").

    One label: its logit is the rating. Two or more: the logit margin of label 1 ("correct")
    over label 0. The model loads on first use, inference runs in a worker thread.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 4096,
    ) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        # One forward pass at a time (and one load): concurrent queries would otherwise
        # load the model twice and fight over the same cores.
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._model is not None:
            return
        self._tokenizer, self._model = load_sequence_classifier(
            self.model_name, self.device, "the local meta RM"
        )

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        """Ratings for formatted inputs (synchronous, thread-safe)."""
        with self._lock:
            return self._score_locked(texts)

    def _score_locked(self, texts: Sequence[str]) -> list[float]:
        self._load()
        return sequence_scores(
            self._tokenizer,
            self._model,
            texts,
            _rating,
            device=self.device,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )

    async def rate(self, query: JudgeQuery, judgments: Sequence[Judgment]) -> list[float]:
        return await asyncio.to_thread(self.score_texts, meta_inputs(query, judgments))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = state["_tokenizer"] = None  # reloaded in the worker
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class RemoteMetaRM:
    """A meta RM behind HTTP: POST {"inputs": [...]} -> {"scores": [...]}.

    The request goes through a `Transport` (`rewardkit.backends.transport`): aiohttp by
    default, with `timeout` seconds per call and `max_response_bytes` per answer; pass
    `transport=MockTransport(handler)` to test without sockets.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: Transport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"meta RM url must be http(s)://..., got {url!r}")
        self.url = url
        self.timeout = float(timeout)
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.transport: Transport = transport or AiohttpTransport(
            timeout=self.timeout, max_response_bytes=max_response_bytes
        )

    async def score_texts(self, texts: Sequence[str]) -> list[float]:
        payload = orjson.dumps({"inputs": list(texts)})
        response = await self.transport.send(
            HTTPRequest("POST", self.url, payload, self.headers, self.timeout)
        )
        if response.status >= 400:
            snippet = response.content[:200].decode("utf-8", "replace")
            raise BackendHTTPError(response.status, f"meta RM at {self.url}: {snippet}")
        try:
            scores = response.json()["scores"]
            values = [float(s) for s in scores]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"meta RM at {self.url} answered without a 'scores' list") from exc
        if len(values) != len(texts):
            raise BackendError(f"meta RM returned {len(values)} scores for {len(texts)} inputs")
        return values

    async def rate(self, query: JudgeQuery, judgments: Sequence[Judgment]) -> list[float]:
        return await self.score_texts(meta_inputs(query, judgments))

    async def aclose(self) -> None:
        await self.transport.aclose()


def build_meta_rm(spec: str | dict[str, Any] | MetaRM | None) -> MetaRM | None:
    """A meta RM from a URL, a model folder, {"kind": ..., ...}, or an instance (None: none).

    The one builder: `JudgeReward(meta_rm=...)` and `rewardkit judge --meta-rm` both use it.
    """
    if spec is None or not isinstance(spec, str | dict):
        return spec
    if isinstance(spec, str):
        if spec.startswith(("http://", "https://")):
            return RemoteMetaRM(spec)
        return TransformersMetaRM(spec)
    options = dict(spec)
    kind = options.pop("kind", "remote" if "url" in options else "transformers")
    try:
        if kind == "remote":
            return RemoteMetaRM(options.pop("url"), **options)
        if kind == "transformers":
            return TransformersMetaRM(options.pop("model"), **options)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"judge: bad meta_rm options {spec!r}: {exc}") from exc
    raise ConfigError(f"judge: meta_rm kind must be 'remote' or 'transformers', got {kind!r}")
