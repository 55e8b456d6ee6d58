"""Where a reasoning model's answer starts: re-exported from `rewardkit.text`.

The think-block rule lives with the rest of the text rules in `rewardkit.text` (see its
docstring); this module keeps the import path the rules and judges use.
"""

from __future__ import annotations

from rewardkit.text import THINK_CLOSE, THINK_OPEN, ThinkSplit, answer_part, split_think

__all__ = ["THINK_CLOSE", "THINK_OPEN", "ThinkSplit", "answer_part", "split_think"]
