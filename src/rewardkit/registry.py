"""Rewards registered by name, so specs, the CLI and trainer adapters can build them.

Built-in rewards are registered lazily (module path only) so `import rewardkit` stays
fast; `register_reward` adds your own. A spec may also name any importable class or
factory as `"package.module:Name"`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from rewardkit.errors import ConfigError, UnknownRewardError
from rewardkit.reward import Reward

__all__ = ["available_rewards", "build_reward", "register_reward", "resolve_factory"]

RewardFactory = Callable[..., Reward]
F = TypeVar("F", bound=RewardFactory)

# name -> "module:attribute"; imported on first use.
_BUILTIN: dict[str, str] = {
    "math": "rewardkit.rules.math:MathReward",
    "code": "rewardkit.rules.code:CodeReward",
    "think_format": "rewardkit.rules.format:ThinkFormatReward",
    "summary_format": "rewardkit.rules.format:SummaryFormatReward",
    "language_consistency": "rewardkit.rules.language:LanguageConsistencyReward",
    "overlong_penalty": "rewardkit.rules.length:OverlongPenaltyReward",
    "repetition_penalty": "rewardkit.rules.length:RepetitionPenaltyReward",
    "judge": "rewardkit.judges.reward:JudgeReward",
    "judge_agreement": "rewardkit.rules.judge_agreement:JudgeAgreementReward",
}
_REGISTERED: dict[str, RewardFactory] = {}


def register_reward(name: str) -> Callable[[F], F]:
    """Decorator: register a `Reward` subclass or factory under `name`."""

    def decorate(factory: F) -> F:
        _REGISTERED[name] = factory
        return factory

    return decorate


def available_rewards() -> list[str]:
    """Every name `build_reward` accepts (besides `module:attr` paths)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def resolve_factory(name: str) -> RewardFactory:
    """The factory for a registered name or a `module:attr` path."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name, name if ":" in name else None)
    if target is None:
        raise UnknownRewardError(
            f"unknown reward {name!r}; choose one of {', '.join(available_rewards())} "
            "or give an importable 'package.module:Name'"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if name in _BUILTIN:
            raise  # a missing optional dependency: its own message names the extra
        raise UnknownRewardError(f"cannot import reward {name!r}: {exc}") from exc
    try:
        factory: RewardFactory = getattr(module, attr)
    except AttributeError as exc:
        raise UnknownRewardError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return factory


def build_reward(name: str, **options: Any) -> Reward:
    """Build a configured reward by name; bad options raise `ConfigError` naming them."""
    factory = resolve_factory(name)
    try:
        reward = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for reward {name!r}: {exc}") from exc
    if not isinstance(reward, Reward):
        raise ConfigError(f"{name!r} built a {type(reward).__name__}, not a rewardkit Reward")
    return reward
