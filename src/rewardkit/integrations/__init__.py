"""Thin adapters from rewardkit specs to trainers' reward-function conventions.

- `rewardkit.integrations.trl`      `reward_funcs(...)` for TRL's `GRPOTrainer(reward_funcs=...)`
- `rewardkit.integrations.verl`     `compute_score` / `compute_score_async` / `compute_score_batch`
- `rewardkit.integrations.verl_group` `GroupRewardManager`, a verl (0.7 - 0.9) reward manager for
                                    listwise judging (imports verl)
- `rewardkit.integrations.openrlhf` a `--reward.remote_url` file with `reward_func(queries, prompts, labels)`

Import the submodule you need; this package imports nothing heavy (no torch, no trl).
"""
