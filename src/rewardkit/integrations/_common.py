"""What the trainer adapters share: spec resolution, per-process Scorer cache, text extraction.

Trainers call reward functions thousands of times, often once per sample (verl), and ship
them to worker processes (TRL under accelerate, verl on Ray). So adapters hold only the
*spec* (picklable, cheap) and fetch a `Scorer` from a per-process cache on first use: the
rewards, their worker pools and judge sessions are built once per process, never pickled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rewardkit._loop import shared_loop
from rewardkit.errors import ConfigError
from rewardkit.registry import resolve_factory
from rewardkit.reward import Reward
from rewardkit.scoring import RewardReport, Scorer
from rewardkit.spec import RewardSpec, load_spec
from rewardkit.text import completion_text, prompt_text  # the one text rule, for the adapters

__all__ = [
    "close_scorers",
    "completion_text",
    "prompt_text",
    "resolve_spec",
    "run_sync",
    "shared_scorer",
    "spec_is_async",
]

T = TypeVar("T")

SpecSource = RewardSpec | str | Path | dict[str, Any]


def resolve_spec(
    spec: SpecSource | None = None,
    reward: str | None = None,
    reward_args: Mapping[str, Any] | None = None,
) -> RewardSpec:
    """Exactly one of `spec` (file, dict or RewardSpec) or `reward` (a registered name)."""
    if spec is not None and reward is not None:
        raise ConfigError("give either spec= or reward=, not both")
    if spec is not None:
        if reward_args:
            raise ConfigError("reward_args= goes with reward=; put options in the spec's `args`")
        return load_spec(spec)
    if reward is not None:
        return RewardSpec.single(reward, **dict(reward_args or {}))
    raise ConfigError(
        "no reward given: pass spec= (a spec file or dict) or reward= (a reward name)"
    )


# --- per-process Scorer cache ---------------------------------------------------------------

_SCORERS: dict[tuple[int, str], Scorer] = {}
_LOCK = threading.Lock()


def spec_key(spec: RewardSpec) -> str:
    """A canonical key for a spec: two equal specs share one Scorer."""
    return spec.model_dump_json()


def shared_scorer(spec: RewardSpec, key: str | None = None) -> Scorer:
    """The Scorer for `spec` in this process, built on first use.

    The key includes the pid: a Scorer built before a fork holds pools that belong to the
    parent, so a forked worker builds its own.
    """
    cache_key = (os.getpid(), key or spec_key(spec))
    scorer = _SCORERS.get(cache_key)
    if scorer is not None:
        return scorer
    with _LOCK:
        scorer = _SCORERS.get(cache_key)
        if scorer is None:
            scorer = Scorer(spec)
            _SCORERS[cache_key] = scorer
    return scorer


def close_scorers() -> None:
    """Close every Scorer this process built (worker pools, judge sessions)."""
    with _LOCK:
        mine = [k for k in _SCORERS if k[0] == os.getpid()]
        scorers = [_SCORERS.pop(k) for k in mine]
    for scorer in scorers:
        with contextlib.suppress(Exception):  # closing at exit must not mask the real outcome
            scorer.close()


atexit.register(close_scorers)


def spec_is_async(spec: RewardSpec) -> bool:
    """True if any reward in the spec is natively async (a judge): it overrides `ascore_batch`.

    Looks at the factories only, so nothing is built (no pools started) in the process that
    merely constructs the adapter and ships it elsewhere.
    """
    for entry in spec.rewards:
        factory = resolve_factory(entry.reward)
        if (
            isinstance(factory, type)
            and issubclass(factory, Reward)
            and factory.ascore_batch is not Reward.ascore_batch
        ):
            return True
    return False


# --- one long-lived event loop for sync callers of async rewards ----------------------------


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code on one persistent loop.

    Not `asyncio.run` per call: judge backends keep HTTP sessions bound to the loop that
    opened them, so every call in a process must land on the same loop.
    """
    return shared_loop().run(coro)


def score_batch(
    spec: RewardSpec, key: str, samples: list[Any], use_async: bool
) -> list[RewardReport]:
    """Score with the shared Scorer, through the async path when the spec holds judges."""
    scorer = shared_scorer(spec, key)
    if use_async:
        return run_sync(scorer.ascore(samples))
    return scorer.score(samples)
