"""`--spec FILE` or `--reward NAME [--arg KEY=VALUE ...]`: the rewards of score, serve and eval.

One definition of the flags, of how `--arg` values are read, and of the spec they make.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml

from rewardkit.errors import ConfigError
from rewardkit.spec import RewardSpec, load_spec

__all__ = ["add_spec_arguments", "parse_reward_args", "spec_from_args"]


def add_spec_arguments(
    parser: argparse.ArgumentParser, *, reward: bool = True, required: bool = True
) -> None:
    """`--spec FILE`, and with `reward=True` the alternative `--reward NAME --arg K=V...`."""
    if not reward:
        parser.add_argument("--spec", metavar="FILE", help="a reward spec (YAML, TOML or JSON)")
        return
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument(
        "--reward", metavar="NAME", help="a registered reward (see `rewardkit rewards`)"
    )
    which.add_argument("--spec", metavar="FILE", help="a reward spec (YAML, TOML or JSON)")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for --reward; VALUE is read as YAML (10, 0.5, true, text). Repeatable.",
    )


def spec_from_args(args: argparse.Namespace) -> RewardSpec | None:
    """The spec the flags name (loaded and validated); None when none was given."""
    pairs = getattr(args, "arg", None) or []
    if args.spec is not None:
        if pairs:
            raise ConfigError("--arg applies to --reward; put options under `args:` in the spec")
        return load_spec(args.spec)
    name = getattr(args, "reward", None)
    if name is None:
        if pairs:
            raise ConfigError("--arg applies to --reward")
        return None
    return RewardSpec.single(name, **parse_reward_args(pairs))


def parse_reward_args(pairs: Sequence[str]) -> dict[str, Any]:
    """`["max_length=100", "opened=true"]` -> `{"max_length": 100, "opened": True}`."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--arg {pair!r}: expected KEY=VALUE")
        if key in options:
            raise ConfigError(f"--arg {key!r} given twice")
        options[key] = _yaml_value(raw)
    return options


def _yaml_value(raw: str) -> Any:
    """A YAML scalar (or a flow `[...]`/`{...}`); anything else stays the raw string.

    `|special_token|` or `a: b` are not meant as YAML block scalars or mappings: a user
    typing them on a command line means the text.
    """
    if not raw.strip():
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, list | dict) and not raw.lstrip().startswith(("[", "{")):
        return raw
    return value
