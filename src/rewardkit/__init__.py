"""rewardkit: reward signals for LLM post-training.

Rule-based verifiers where an answer can be checked, SPCT-style LLM judges where it cannot,
and adapters that plug both into TRL, verl and OpenRLHF.
"""

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

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "InvalidRewardError",
    "Reward",
    "RewardResult",
    "RewardkitError",
    "Sample",
    "Score",
    "UnknownRewardError",
    "Unscored",
    "__version__",
    "available_rewards",
    "build_reward",
    "register_reward",
]
