"""Reward specs: which rewards apply to which samples, with what weights.

A spec is a YAML, TOML or JSON file validated here; the same spec drives `rewardkit score`,
`rewardkit serve` and the trainer adapters.

```yaml
rewards:
  - reward: math              # a registered name, or "package.module:Name"
    weight: 1.0
    when: {data_source: [gsm8k, math]}   # route by any sample field
  - reward: think_format
    weight: 0.2
  - name: helpfulness
    reward: judge
    args: {base_url: "http://127.0.0.1:8000/v1", model: my-judge}
    when: {task: chat}
on_unscored: unscored         # or "skip" / "zero"
```
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rewardkit.errors import ConfigError

__all__ = ["RewardEntry", "RewardSpec", "load_spec"]


class RewardEntry(BaseModel):
    """One reward in a spec."""

    model_config = ConfigDict(extra="forbid")

    reward: str = Field(description="Registered reward name or 'package.module:Name'.")
    name: str | None = Field(
        default=None, description="Label in outputs and logs; defaults to `reward`."
    )
    weight: float = Field(default=1.0, description="Multiplier in the weighted sum.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Options passed to the reward's factory."
    )
    when: dict[str, str | int | bool | list[str | int | bool]] = Field(
        default_factory=dict,
        description="Apply only to samples whose fields match every key (a value or a list "
        "of allowed values). Empty: apply to every sample.",
    )

    @property
    def label(self) -> str:
        return self.name or self.reward

    def applies_to(self, fields: dict[str, Any] | Any) -> bool:
        for key, allowed in self.when.items():
            if key not in fields:
                return False
            options = allowed if isinstance(allowed, list) else [allowed]
            if not any(_field_matches(fields[key], option) for option in options):
                return False
        return True


def _field_matches(value: Any, option: str | int | bool) -> bool:
    """`when:` equality, loose on type ("3" matches 3) but never True == 1."""
    if isinstance(value, bool) or isinstance(option, bool):
        return str(value).lower() == str(option).lower()
    return value == option or str(value) == str(option)


class RewardSpec(BaseModel):
    """A set of rewards and how their results combine into one number per sample."""

    model_config = ConfigDict(extra="forbid")

    rewards: list[RewardEntry] = Field(min_length=1, description="The rewards, in order.")
    on_unscored: Literal["unscored", "skip", "zero"] = Field(
        default="unscored",
        description="When an applicable reward cannot score a sample: make the whole sample "
        "unscored (default), leave that reward out of the sum, or count it as 0.",
    )

    @model_validator(mode="after")
    def _unique_labels(self) -> RewardSpec:
        labels = [entry.label for entry in self.rewards]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(
                f"reward labels must be unique, repeated: {duplicates}; give each a `name`"
            )
        return self

    @classmethod
    def single(cls, reward: str, **args: Any) -> RewardSpec:
        """A spec of one reward, as `--reward NAME` builds."""
        return cls(rewards=[RewardEntry(reward=reward, args=args)])


def load_spec(source: str | Path | dict[str, Any] | RewardSpec) -> RewardSpec:
    """Load and validate a spec from a file path, a dict, or pass a spec through."""
    if isinstance(source, RewardSpec):
        return source
    origin = "spec"
    if isinstance(source, str | Path):
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"spec file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".toml":
                data: Any = tomllib.loads(text)
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            kind = {".toml": "TOML", ".json": "JSON"}.get(path.suffix, "YAML")
            raise ConfigError(f"{path}: not valid {kind}: {_one_line(exc)}") from exc
    else:
        data = source
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with a `rewards:` list")
    try:
        return RewardSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: invalid spec: {_problems(exc)}") from exc


def _one_line(exc: Exception) -> str:
    """A parser error as one line: the CLI prints one line per error."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _problems(exc: ValidationError) -> str:
    """Validation errors keyed by field; a union's per-member failures become one entry."""
    by_loc: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # pydantic tags each failed union member ("str", "list[union[str,int,bool]]"):
        # the user only needs to know the field's value has the wrong shape.
        tag = next((i for i, part in enumerate(loc) if i and part in _UNION_TAGS), None)
        if tag is not None and err["type"] in _UNION_MEMBER_ERRORS:
            loc = loc[:tag]
            message = "expected a string, number or boolean, or a list of them"
        else:
            message = err["msg"]
        messages = by_loc.setdefault(".".join(loc) or "<root>", [])
        if message not in messages:
            messages.append(message)
    return "; ".join(f"{loc}: {', '.join(msgs)}" for loc, msgs in by_loc.items())


_UNION_MEMBER_ERRORS = {
    "string_type",
    "int_type",
    "int_parsing",
    "bool_type",
    "bool_parsing",
    "list_type",
}
_UNION_TAGS = {"str", "int", "bool", "list[union[str,int,bool]]"}
