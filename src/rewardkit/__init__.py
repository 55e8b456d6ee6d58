"""rewardkit: reward signals for LLM post-training.

Rule-based verifiers where an answer can be checked, SPCT-style LLM judges where it cannot,
and adapters that plug both into TRL, verl and OpenRLHF.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from rewardkit._lazy import load_lazy as _load_lazy
from rewardkit.errors import (
    ConfigError,
    InputError,
    InvalidRewardError,
    RewardkitError,
    UnknownRewardError,
)
from rewardkit.registry import available_rewards, build_reward, register_reward
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score, Unscored

if _TYPE_CHECKING:
    from rewardkit.scoring import RewardReport, Scorer
    from rewardkit.spec import RewardSpec, load_spec

__version__ = "0.1.0"

# The engine and spec are loaded on first use: pydantic and YAML double `import rewardkit`.
_LAZY = {
    "RewardReport": "rewardkit.scoring",
    "Scorer": "rewardkit.scoring",
    "RewardSpec": "rewardkit.spec",
    "load_spec": "rewardkit.spec",
}


def __getattr__(name: str) -> object:
    return _load_lazy(__name__, _LAZY, name)


__all__ = [
    "ConfigError",
    "InputError",
    "InvalidRewardError",
    "Reward",
    "RewardReport",
    "RewardResult",
    "RewardSpec",
    "RewardkitError",
    "Sample",
    "Score",
    "Scorer",
    "UnknownRewardError",
    "Unscored",
    "__version__",
    "available_rewards",
    "build_reward",
    "load_spec",
    "register_reward",
]
