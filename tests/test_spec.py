"""Reward specs: loading from YAML/TOML/JSON, validation errors that say what to fix, routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import ConfigError, UnknownRewardError
from rewardkit.registry import available_rewards, build_reward, resolve_factory
from rewardkit.scoring import Scorer
from rewardkit.spec import RewardEntry, RewardSpec, load_spec

SPEC_DICT: dict[str, Any] = {
    "rewards": [
        {"reward": "math", "weight": 1.0, "when": {"data_source": ["gsm8k", "math"]}},
        {"reward": "think_format", "weight": 0.2},
        {
            "name": "lang",
            "reward": "language_consistency",
            "args": {"target": "en"},
            "when": {"task": "chat"},
        },
    ],
    "on_unscored": "skip",
}

SPEC_TEXT = {
    ".yaml": """
rewards:
  - reward: math
    weight: 1.0
    when: {data_source: [gsm8k, math]}
  - reward: think_format
    weight: 0.2
  - name: lang
    reward: language_consistency
    args: {target: en}
    when: {task: chat}
on_unscored: skip
""",
    ".toml": """
on_unscored = "skip"

[[rewards]]
reward = "math"
weight = 1.0
when = { data_source = ["gsm8k", "math"] }

[[rewards]]
reward = "think_format"
weight = 0.2

[[rewards]]
name = "lang"
reward = "language_consistency"
args = { target = "en" }
when = { task = "chat" }
""",
    ".json": json.dumps(SPEC_DICT),
}


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json", ".yml"])
def test_the_three_formats_load_the_same_spec(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"spec{suffix}"
    path.write_text(SPEC_TEXT.get(suffix, SPEC_TEXT[".yaml"]), encoding="utf-8")
    spec = load_spec(path)
    assert spec == RewardSpec.model_validate(SPEC_DICT)
    assert [e.label for e in spec.rewards] == ["math", "think_format", "lang"]
    assert spec.on_unscored == "skip"
    assert spec.rewards[2].args == {"target": "en"}
    assert load_spec(str(path)) == spec


def test_dict_and_spec_sources() -> None:
    spec = load_spec(SPEC_DICT)
    assert load_spec(spec) is spec
    single = RewardSpec.single("overlong_penalty", max_length=10, buffer_length=2)
    assert single.rewards == [
        RewardEntry(reward="overlong_penalty", args={"max_length": 10, "buffer_length": 2})
    ]
    assert single.on_unscored == "unscored"


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("bad.yaml", "rewards:\n  - reward: [math\n", "bad.yaml: not valid YAML: "),
        ("bad.toml", "[[rewards]\nreward = 'math'\n", "bad.toml: not valid TOML: "),
        ("bad.json", '{"rewards": [}', "bad.json: not valid JSON: "),
        ("empty.yaml", "", "expected a mapping with a `rewards:` list"),
        ("list.yaml", "- reward: math\n", "expected a mapping with a `rewards:` list"),
        ("none.yaml", "on_unscored: skip\n", "rewards: Field required"),
        ("zero.yaml", "rewards: []\n", "rewards: List should have at least 1 item"),
        (
            "typo.yaml",
            "rewards:\n  - reward: math\n    wieght: 2\n",
            "rewards.0.wieght: Extra inputs are not permitted",
        ),
        (
            "top.yaml",
            "rewards: [{reward: math}]\nmode: fast\n",
            "mode: Extra inputs are not permitted",
        ),
        (
            "mode.yaml",
            "rewards: [{reward: math}]\non_unscored: ignore\n",
            "on_unscored: Input should be 'unscored', 'skip' or 'zero'",
        ),
        (
            "weight.yaml",
            "rewards: [{reward: math, weight: heavy}]\n",
            "rewards.0.weight: Input should be a valid number",
        ),
        (
            "when.yaml",
            "rewards: [{reward: math, when: {task: {a: 1}}}]\n",
            "rewards.0.when.task: expected a string, number or boolean, or a list of them",
        ),
        (
            "dup.yaml",
            "rewards: [{reward: math}, {reward: math, weight: 2}]\n",
            "reward labels must be unique, repeated: ['math']; give each a `name`",
        ),
        (
            "dupname.yaml",
            "rewards: [{reward: math, name: m}, {reward: think_format, name: m}]\n",
            "repeated: ['m']",
        ),
    ],
)
def test_spec_errors_name_the_file_and_what_to_fix(
    tmp_path: Path, filename: str, text: str, message: str
) -> None:
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert str(path) in text_of_error
    assert "\n" not in text_of_error  # the CLI prints it as one line


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_renamed_duplicates_are_fine() -> None:
    spec = load_spec({"rewards": [{"reward": "math"}, {"reward": "math", "name": "math_strict"}]})
    assert [e.label for e in spec.rewards] == ["math", "math_strict"]


def test_unknown_reward_name_lists_the_choices() -> None:
    with pytest.raises(UnknownRewardError) as info:
        Scorer({"rewards": [{"reward": "maths"}]})
    message = str(info.value)
    assert message.startswith("unknown reward 'maths'; choose one of ")
    for name in ("math", "think_format", "language_consistency", "overlong_penalty"):
        assert name in message
    assert "package.module:Name" in message
    assert isinstance(info.value, ConfigError)  # the CLI's exit 2


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        (
            "no_such_pkg_xyz.mod:Reward",
            UnknownRewardError,
            "cannot import reward 'no_such_pkg_xyz.mod:Reward'",
        ),
        (
            "rewardkit.rules.format:NoSuchReward",
            UnknownRewardError,
            "has no attribute 'NoSuchReward'",
        ),
        ("rewardkit.rules.format:think_format", ConfigError, "not a rewardkit Reward"),
    ],
)
def test_import_path_errors(name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_reward(name) if error is UnknownRewardError else build_reward(name, text="x")


def test_import_path_builds_a_reward() -> None:
    reward = build_reward("rewardkit.rules.format:SummaryFormatReward", token="<s>")
    assert type(reward).__name__ == "SummaryFormatReward"
    assert resolve_factory("think_format") is resolve_factory(
        "rewardkit.rules.format:ThinkFormatReward"
    )


def test_bad_options_name_the_reward() -> None:
    with pytest.raises(
        ConfigError,
        match=r"bad options for reward 'think_format': .*unexpected keyword argument 'strict'",
    ):
        build_reward("think_format", strict=True)


def test_available_rewards_include_the_builtins() -> None:
    names = available_rewards()
    assert names == sorted(names)
    assert {
        "math",
        "code",
        "think_format",
        "summary_format",
        "language_consistency",
        "overlong_penalty",
        "repetition_penalty",
        "judge",
    } <= set(names)


@pytest.mark.parametrize(
    ("when", "fields", "applies"),
    [
        ({}, {}, True),
        ({}, {"task": "x"}, True),
        ({"task": "math"}, {"task": "math"}, True),
        ({"task": "math"}, {"task": "code"}, False),
        ({"task": "math"}, {}, False),
        ({"task": ["math", "code"]}, {"task": "code"}, True),
        ({"level": 3}, {"level": "3"}, True),  # CSV/Parquet strings match YAML numbers
        ({"level": "3"}, {"level": 3}, True),
        ({"level": [1, 2]}, {"level": 3}, False),
        ({"hard": True}, {"hard": True}, True),
        ({"hard": True}, {"hard": "true"}, True),
        ({"hard": True}, {"hard": 1}, False),  # True == 1 in Python; not in a spec
        ({"level": 1}, {"level": True}, False),
        ({"task": "math", "lang": "en"}, {"task": "math", "lang": "fr"}, False),
        ({"task": "math", "lang": "en"}, {"task": "math", "lang": "en", "x": 1}, True),
    ],
)
def test_when_routing(when: dict[str, Any], fields: dict[str, Any], applies: bool) -> None:
    assert RewardEntry(reward="math", when=when).applies_to(fields) is applies
