"""Command-line flags generated from a pydantic options model, so an option is written once.

Each field of the model becomes a flag: `max_tokens` -> `--max-tokens`; the help is the
field's `description`, `choices` come from a `Literal`, the default from the field's
default. A few hints ride in `json_schema_extra`:

    positional   the field is a positional argument (`input`)
    flags        the spellings, e.g. ["-o", "--output"]
    metavar      the placeholder shown in --help
    cli_required False: optional on the command line though the model requires it (the
                 command fills it in, e.g. a default model)

A `tuple[str, ...]` field is a repeatable flag, a `bool` defaulting to False a switch
(`--retry-errors`), and one defaulting to True an opt-out (`--no-progress`, stored as
`no_progress`). `values_from_args` reads the parsed flags back as field values.
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["add_model_arguments", "values_from_args"]


def _hints(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def _dest(name: str, info: FieldInfo) -> str:
    return f"no_{name}" if _is_opt_out(info) else name


def _is_opt_out(info: FieldInfo) -> bool:
    return info.annotation is bool and info.default is True


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _argument(name: str, info: FieldInfo) -> tuple[list[str], dict[str, Any]]:
    hints = _hints(info)
    flag = "--" + name.replace("_", "-")
    kwargs: dict[str, Any] = {"help": info.description}
    if hints.get("metavar"):
        kwargs["metavar"] = hints["metavar"]
    annotation = _unwrap_optional(info.annotation)
    if hints.get("positional"):
        return [name], kwargs
    flags = list(hints.get("flags") or [flag])
    if annotation is bool:
        if _is_opt_out(info):
            help_text = f"no {info.description}" if info.description else None
            return [f"--no-{name.replace('_', '-')}"], {
                **kwargs,
                "help": help_text,
                "action": "store_true",
            }
        return flags, {**kwargs, "action": "store_true"}
    if get_origin(annotation) is tuple:
        return flags, {**kwargs, "action": "append", "default": []}
    if get_origin(annotation) is Literal:
        kwargs["choices"] = list(get_args(annotation))
    elif annotation in (int, float):
        kwargs["type"] = annotation
    required = info.is_required() and hints.get("cli_required", True)
    if required:
        kwargs["required"] = True
    elif not info.is_required():
        kwargs["default"] = info.default
        if info.default is not None and kwargs["help"]:
            kwargs["help"] += " (default: %(default)s)"
    return flags, kwargs


def add_model_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model: type[BaseModel],
    *,
    skip: frozenset[str] = frozenset(),
) -> None:
    """One flag per field of `model` (fields named in `skip` left out), in field order."""
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        flags, kwargs = _argument(name, info)
        if not _hints(info).get("positional") and _is_opt_out(info):
            kwargs["dest"] = _dest(name, info)
        elif not _hints(info).get("positional"):
            kwargs["dest"] = name
        parser.add_argument(*flags, **kwargs)


def values_from_args(
    args: argparse.Namespace, model: type[BaseModel], *, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The field values given on the command line (opt-out switches turned back around)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        dest = _dest(name, info)
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if _is_opt_out(info):
            value = not value
        elif isinstance(value, list):
            value = tuple(value)
        elif value is not None and _unwrap_optional(info.annotation) is Path:
            value = Path(value)
        values[name] = value
    return values
