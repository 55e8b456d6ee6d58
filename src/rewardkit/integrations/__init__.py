"""Thin adapters from rewardkit specs to trainers' reward-function conventions.

- `rewardkit.integrations.trl`      `reward_funcs(...)` for TRL's `GRPOTrainer(reward_funcs=...)`
- `rewardkit.integrations.verl`     `compute_score` / `compute_score_batch` / `compute_score_async`
- `rewardkit.integrations.openrlhf` a `--remote_rm_url` file with `reward_func(queries, prompts, labels)`

Import the submodule you need; this package imports nothing heavy (no torch, no trl).
"""
