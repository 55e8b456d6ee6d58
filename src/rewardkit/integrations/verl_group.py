"""A verl reward manager that scores each prompt's rollouts in one call (listwise judging).

verl (0.7 - 0.9) computes rewards in its reward loop one sample at a time (`run_single`), streamed
while rollouts finish, and its `batch` reward manager is gone; so a judge with
`group_by_prompt: true` would see every response alone. `GroupRewardManager` is a reward
manager for verl's own extension point (`reward.reward_manager.source=importlib`): it holds
each sample until the other rollouts of its prompt (same `uid`) have reached this worker,
then calls the batch form of the reward function (rewardkit's `compute_score_batch`) once
for the whole group, and hands each sample its own result.

    reward.num_workers=1
    reward.reward_manager.source=importlib
    reward.reward_manager.name=GroupRewardManager
    reward.reward_manager.module.path=pkg://rewardkit.integrations.verl_group
    reward.custom_reward_function.path=pkg://rewardkit.integrations.verl
    reward.custom_reward_function.name=compute_score_batch
    +reward.custom_reward_function.reward_kwargs.spec=/abs/path/reward_spec.yaml

A group is complete at `actor_rollout_ref.rollout.n` samples (override with
`+reward.reward_kwargs.group_size=N`). verl sends each sample to one of `reward.num_workers`
workers at random, so groups only stay whole with one worker. A group that is still
incomplete `group_wait_s` seconds (default 30, `+reward.reward_kwargs.group_wait_s=S`) after
its first sample arrived is scored with the samples that came (a warning is logged): this is
what happens in validation when `val_kwargs.n` differs from `rollout.n`.

Importing this module imports verl (>= 0.7, CI-tested 0.7.1 and 0.9.1); nothing else in
rewardkit does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from rewardkit.errors import ConfigError

try:
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
except ImportError as exc:  # verl < 0.7 has no reward loop manager base
    # An ImportError, as any module whose framework is missing: verl loads this file itself.
    raise ImportError(
        "rewardkit.integrations.verl_group needs verl >= 0.7 (its reward loop and "
        f"`reward.reward_manager.source=importlib`); importing verl failed: {exc}"
    ) from exc

__all__ = ["GroupRewardManager"]

logger = logging.getLogger(__name__)

DEFAULT_GROUP_WAIT_S = 30.0


@dataclass
class _Item:
    data_source: Any
    solution_str: str
    ground_truth: Any
    extra_info: Any
    future: asyncio.Future[dict[str, Any]]


@dataclass
class _Group:
    items: list[_Item] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class GroupRewardManager(RewardManagerBase):
    """verl reward manager: one batch-form `compute_score` call per prompt group (`uid`)."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        custom = config.reward.get("custom_reward_function") or {}
        if compute_score is None or not custom.get("path"):
            # without a custom function verl passes its own per-sample default scorer
            raise ConfigError(
                "GroupRewardManager calls the batch form of a reward function: set "
                "reward.custom_reward_function.path=pkg://rewardkit.integrations.verl and "
                "reward.custom_reward_function.name=compute_score_batch"
            )
        self.compute_score = compute_score
        self.is_async = inspect.iscoroutinefunction(compute_score)
        del reward_router_address, reward_model_tokenizer  # the spec names its own backends
        options = dict(config.reward.get("reward_kwargs") or {})
        self.group_size = int(options.get("group_size") or config.actor_rollout_ref.rollout.n)
        self.group_wait_s = float(options.get("group_wait_s", DEFAULT_GROUP_WAIT_S))
        if self.group_size < 1 or self.group_wait_s <= 0:
            raise ConfigError(
                f"GroupRewardManager needs group_size >= 1 and group_wait_s > 0, got "
                f"{self.group_size} and {self.group_wait_s}"
            )
        if int(config.reward.get("num_workers", 1)) != 1 and self.group_size > 1:
            logger.warning(
                "GroupRewardManager with reward.num_workers=%s: verl spreads a prompt's "
                "rollouts over the workers, so groups arrive split; set reward.num_workers=1",
                config.reward.num_workers,
            )
        self._groups: dict[str, _Group] = {}

    async def run_single(self, data: Any) -> dict[str, Any]:
        item = data[-1:][0]  # multi-sequence outputs: the last sequence is scored, as in verl
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        loop = asyncio.get_running_loop()
        solution = await loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True)
        )
        extra_info = item.non_tensor_batch.get("extra_info", None)
        entry = _Item(
            data_source=item.non_tensor_batch["data_source"],
            solution_str=solution,
            ground_truth=item.non_tensor_batch["reward_model"]["ground_truth"],
            extra_info=dict(extra_info) if extra_info is not None else {},
            future=loop.create_future(),
        )
        uid = item.non_tensor_batch.get("uid")
        if uid is None:  # no group identity: score alone rather than guess
            await self._score([entry])
            return await entry.future
        key = str(uid)
        group = self._groups.setdefault(key, _Group())
        group.items.append(entry)
        if len(group.items) >= self.group_size:
            self._close(key)
        elif group.timer is None:
            group.timer = loop.call_later(self.group_wait_s, self._close, key)
        return await entry.future

    def _close(self, key: str) -> None:
        group = self._groups.pop(key, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        if len(group.items) < self.group_size:
            logger.warning(
                "rewardkit: group %s scored with %d of %d rollouts (waited %.0fs)",
                key,
                len(group.items),
                self.group_size,
                self.group_wait_s,
            )
        task = asyncio.ensure_future(self._score(group.items))
        task.add_done_callback(lambda _: None)  # failures go to the samples' futures

    async def _score(self, items: list[_Item]) -> None:
        kwargs = {
            "data_sources": [i.data_source for i in items],
            "solution_strs": [i.solution_str for i in items],
            "ground_truths": [i.ground_truth for i in items],
            "extra_infos": [i.extra_info for i in items],
        }
        try:
            if self.is_async:
                results = await self.compute_score(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(None, lambda: self.compute_score(**kwargs))
            if len(results) != len(items):
                raise ConfigError(
                    f"the batch reward function returned {len(results)} results for "
                    f"{len(items)} samples"
                )
        except Exception as exc:
            for i in items:
                if not i.future.done():
                    i.future.set_exception(exc)
            return
        for i, result in zip(items, results, strict=True):
            if not i.future.done():
                i.future.set_result(_as_verl(result))


def _as_verl(result: Any) -> dict[str, Any]:
    """What verl's reward loop expects from `run_single` (as its naive manager builds it)."""
    if isinstance(result, dict):
        return {"reward_score": result["score"], "reward_extra_info": dict(result)}
    return {"reward_score": result, "reward_extra_info": {"acc": result}}
