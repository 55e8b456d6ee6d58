"""How each OpenAI-compatible server wants an output constraint said, and which server it is.

Servers agree on `/v1/chat/completions` and disagree on constraints; a field a server does
not know is usually ignored in silence, so a constraint sent in the wrong dialect simply
does nothing (llama-cpp-python's server ignores a regex, and a small judge then writes
`Scores: 9, 8` with no box). Each dialect lists the request forms it honours:

    llama_cpp  llama-cpp-python's server and llama-server:   grammar (GBNF), else a JSON schema
    vllm       structured_outputs {regex|grammar|json}; before 0.10.2 guided_regex/grammar/json
    sglang     regex, else response_format json_schema
    openai     response_format json_schema (the verdict travels as JSON; see `text_fields`)
    generic    the constraint's own kind, in every field some server reads it from

A `Constraint` carries its shape in one kind plus `alternatives` in others (a judge's
verdict as a regex, a GBNF grammar and a JSON schema); the dialect picks the first form it
can send. `server_kind="auto"` asks the server once (`detect_server`): `/v1/models`
`owned_by`, then llama-server's `/props`, SGLang's `/get_model_info`, vLLM's `/version`.
A form the server still rejects (a 400/422/500 naming its field) is dropped for good and
the next form of the dialect is tried: see `HTTPBackend`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from rewardkit.backends.base import Constraint
from rewardkit.backends.transport import AiohttpTransport, HTTPRequest, Transport
from rewardkit.errors import BackendError, ConfigError

__all__ = [
    "SERVER_KINDS",
    "SERVER_KIND_HELP",
    "Dialect",
    "ServerKind",
    "ServerProbe",
    "classify_server",
    "constraint_fields",
    "detect_server",
    "dialect_for",
    "text_from_json",
]

#: What `--server-kind` / `server_kind` accept: a dialect, or "auto" to ask the server.
ServerKind = Literal["auto", "llama_cpp", "vllm", "sglang", "openai", "generic"]
SERVER_KINDS: tuple[str, ...] = get_args(ServerKind)
#: One line for `--help` and spec docs.
SERVER_KIND_HELP = (
    "which constraint dialect the judge server speaks: auto (ask the server once), llama_cpp "
    "(GBNF grammar), vllm (structured_outputs / guided_regex), sglang (regex), openai (JSON "
    "schema), generic (the constraint's own kind in every known field)"
)
Kind = Literal["regex", "grammar", "json_schema"]

# vLLM's first release with `structured_outputs` (the `guided_*` fields went in 0.12).
_VLLM_STRUCTURED_OUTPUTS = (0, 10, 2)


@dataclass(frozen=True, slots=True)
class _Form:
    """One way to write a constraint of `kind` into the request body's `field`."""

    kind: Kind
    field: str
    wrap: Callable[[Any], Any]


def _schema(value: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        schema = json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"json_schema constraint is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise ConfigError("json_schema constraint must be a JSON object")
    return schema


#: Every request form, by name; a rejected form is remembered by this name.
FORMS: dict[str, _Form] = {
    "grammar": _Form("grammar", "grammar", str),
    "structured_outputs.regex": _Form("regex", "structured_outputs", lambda v: {"regex": v}),
    "structured_outputs.grammar": _Form("grammar", "structured_outputs", lambda v: {"grammar": v}),
    "structured_outputs.json": _Form(
        "json_schema", "structured_outputs", lambda v: {"json": _schema(v)}
    ),
    "guided_regex": _Form("regex", "guided_regex", str),
    "guided_grammar": _Form("grammar", "guided_grammar", str),
    "guided_json": _Form("json_schema", "guided_json", _schema),
    "regex": _Form("regex", "regex", str),
    "response_format.json_schema": _Form(
        "json_schema",
        "response_format",
        lambda v: {
            "type": "json_schema",
            "json_schema": {"name": "judgment", "schema": _schema(v), "strict": True},
        },
    ),
    # llama-cpp-python's form (its server answers the json_schema form with a 500)
    "response_format.json_object": _Form(
        "json_schema", "response_format", lambda v: {"type": "json_object", "schema": _schema(v)}
    ),
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """A server family's constraint forms.

    `slots`: each slot is a list of forms in preference order, and the first one that
    fits the constraint and was not rejected is sent; one slot means exactly one form.
    `own_kind_only`: use the constraint's own kind only, never an alternative (for a
    server we know nothing about, sending a second shape could enforce the wrong one).
    """

    name: str
    slots: tuple[tuple[str, ...], ...]
    own_kind_only: bool = False


_VLLM_FORMS = (
    "structured_outputs.regex",
    "guided_regex",
    "structured_outputs.grammar",
    "guided_grammar",
    "structured_outputs.json",
    "guided_json",
)
_JSON_FORMS = ("response_format.json_schema", "response_format.json_object")

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        # json_object + schema: both llama.cpp servers take it, and llama-cpp-python's
        # answers the json_schema form with a 500.
        Dialect("llama_cpp", (("grammar", "response_format.json_object"),)),
        Dialect("vllm", (_VLLM_FORMS,)),
        Dialect("sglang", (("regex", "response_format.json_schema"),)),
        Dialect("openai", (("response_format.json_schema",),)),
        Dialect(
            "generic",
            (
                ("structured_outputs.regex",),
                ("guided_regex",),
                ("grammar",),
                _JSON_FORMS,
            ),
            own_kind_only=True,
        ),
    )
}


def dialect_for(
    kind: str,
    *,
    version: tuple[int, ...] | None = None,
    regex_fields: Collection[str] = ("structured_outputs", "guided_regex"),
) -> Dialect:
    """The dialect of a resolved server kind. vLLM's fields depend on its `version` (both
    spellings, first `structured_outputs`, when unknown); `regex_fields` narrows the regex
    fields of vLLM and generic servers."""
    if kind not in DIALECTS:
        raise ConfigError(f"server kind must be one of {', '.join(SERVER_KINDS)}, got {kind!r}")
    dialect = DIALECTS[kind]
    if kind not in ("vllm", "generic"):
        return dialect

    def keep(name: str) -> bool:
        if name == "structured_outputs.regex":
            if "structured_outputs" not in regex_fields:
                return False
        elif name == "guided_regex" and "guided_regex" not in regex_fields:
            return False
        if kind == "vllm" and version is not None:
            modern = version >= _VLLM_STRUCTURED_OUTPUTS
            return name.startswith("structured_outputs") == modern
        return True

    slots = tuple(s for s in (tuple(n for n in slot if keep(n)) for slot in dialect.slots) if s)
    return Dialect(dialect.name, slots, dialect.own_kind_only)


def constraint_fields(
    constraint: Constraint, dialect: Dialect, rejected: Collection[str] = ()
) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
    """The body fields that carry `constraint` in `dialect`, skipping `rejected` forms.

    Returns (fields, form name per field, text_fields): `text_fields` is non-empty when a
    JSON form with `text_fields` was sent, and the answer must be turned back into text.
    """
    shapes = list(constraint.forms())
    if dialect.own_kind_only:
        shapes = shapes[:1]
    for shape in shapes:
        if shape.kind not in ("regex", "grammar", "json_schema"):
            raise ConfigError(f"unknown constraint kind {shape.kind!r}")
    fields: dict[str, Any] = {}
    sent: dict[str, str] = {}
    text_fields: tuple[str, ...] = ()
    for slot in dialect.slots:
        for name in slot:
            form = FORMS[name]
            if name in rejected or form.field in fields:
                continue
            chosen = next((s for s in shapes if s.kind == form.kind), None)
            if chosen is None:
                continue
            fields[form.field] = form.wrap(chosen.value)
            sent[form.field] = name
            if form.kind == "json_schema":
                text_fields = chosen.text_fields
            break
    return fields, sent, text_fields


def text_from_json(text: str, fields: Sequence[str]) -> str:
    """The text a JSON-constrained answer stands for: its string `fields`, one per line.

    Anything else (not JSON, a missing or non-string field) comes back unchanged, so the
    judge's parser sees the raw answer and names the failure.
    """
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if not isinstance(obj, dict) or not all(isinstance(obj.get(f), str) for f in fields):
        return text
    return "\n".join(obj[f] for f in fields)


# -- which server is it ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerProbe:
    """What the server said at its introspection endpoints (None: no JSON answer)."""

    host: str = ""
    models: Any = None
    props: Any = None
    model_info: Any = None
    version: Any = None


def _parse_version(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, str):
        return None
    numbers = []
    for part in value.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers) or None


def _owners(models: Any) -> list[str]:
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list):
        return []
    return [str(m.get("owned_by", "")).lower() for m in data if isinstance(m, dict)]


def classify_server(probe: ServerProbe) -> tuple[str, tuple[int, ...] | None]:
    """(server kind, vLLM version or None) from what the server answered."""
    version = None
    if isinstance(probe.version, dict):
        version = _parse_version(probe.version.get("version"))
    owners = _owners(probe.models)
    if "vllm" in owners:
        return "vllm", version
    if "sglang" in owners:
        return "sglang", None
    # llama-server says "llamacpp"; llama-cpp-python's server says "me".
    if "llamacpp" in owners or "me" in owners:
        return "llama_cpp", None
    if any(o in ("openai", "system", "openai-internal") for o in owners) or (
        probe.host == "api.openai.com"
    ):
        return "openai", None
    if isinstance(probe.props, dict) and (
        "default_generation_settings" in probe.props or "chat_template" in probe.props
    ):
        return "llama_cpp", None
    if isinstance(probe.model_info, dict) and "model_path" in probe.model_info:
        return "sglang", None
    if version is not None:  # vLLM's /version is {"version": "0.x.y"}
        return "vllm", version
    return "generic", None


async def _get_json(
    transport: Transport, url: str, headers: Mapping[str, str], timeout: float
) -> Any:
    try:
        response = await transport.send(HTTPRequest("GET", url, headers=headers, timeout=timeout))
        return response.json() if response.status == 200 else None
    except (BackendError, ValueError):
        return None


async def _probe(
    transport: Transport, endpoint: str, headers: Mapping[str, str], timeout: float
) -> ServerProbe:
    base = endpoint.removesuffix("/chat/completions")  # .../v1
    root = base.removesuffix("/v1")
    host = urlsplit(endpoint).hostname or ""
    if host == "api.openai.com":
        return ServerProbe(host=host)

    async def get(url: str) -> Any:
        return await _get_json(transport, url, headers, timeout)

    models = await get(base + "/models")
    probe = ServerProbe(host=host, models=models)
    kind, _ = classify_server(probe)
    if kind == "vllm":  # which fields it takes depends on its version
        return ServerProbe(host, models, version=await get(root + "/version"))
    if kind != "generic":
        return probe
    # Not said by /v1/models: ask each server's own endpoint, cheapest guess first.
    props = await get(root + "/props")
    if isinstance(props, dict):
        return ServerProbe(host, models, props=props)
    info = await get(root + "/get_model_info")
    if isinstance(info, dict):
        return ServerProbe(host, models, model_info=info)
    return ServerProbe(host, models, version=await get(root + "/version"))


async def detect_server(
    endpoint: str,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 5.0,
    transport: Transport | None = None,
) -> tuple[str, tuple[int, ...] | None]:
    """Ask the server behind a chat-completions `endpoint` what it is: (kind, vLLM version).

    A few GETs through `transport` (default: a fresh aiohttp one, closed after), once per
    backend; any failure means "generic".
    """
    if transport is not None:
        probe = await _probe(transport, endpoint, dict(headers or {}), timeout)
        return classify_server(probe)
    own = AiohttpTransport(limit=4, timeout=timeout)
    try:
        probe = await _probe(own, endpoint, dict(headers or {}), timeout)
    finally:
        await own.aclose()
    return classify_server(probe)
