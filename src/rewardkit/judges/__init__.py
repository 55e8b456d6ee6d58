"""Generative reward models: SPCT-style pointwise judging, voting, meta RM, pairwise baseline.

    judge = PointwiseJudge(backend, JudgeConfig(samples=8))
    result = await judge.judge(JudgeQuery(prompt, (response_a, response_b)))
    result.rewards   # one vote per response, input order; None where no valid judgment

Modules: `templates` (prompts, modes, response fencing), `parsing` (verdicts),
`constrain` (output constraints, logprob-expected scores), `voting` (reducers),
`grm` (the pointwise judge), `meta_rm`, `pairwise`, `reward` (`JudgeReward` for specs).
"""

from rewardkit.judges.constrain import build_constraint, expected_scores
from rewardkit.judges.data import JudgeConfig, JudgeQuery, JudgeResult, Judgment
from rewardkit.judges.grm import PointwiseJudge
from rewardkit.judges.meta_rm import (
    MetaRM,
    MetaRMRecord,
    RemoteMetaRM,
    TransformersMetaRM,
    format_meta_input,
    read_meta_records,
    records_from_result,
    write_meta_records,
)
from rewardkit.judges.pairwise import PairJudgment, PairwiseJudge, PairwiseResult
from rewardkit.judges.parsing import (
    ParsedJudgment,
    ParsedPreference,
    parse_judgment,
    parse_preference,
)
from rewardkit.judges.reward import JudgeReward
from rewardkit.judges.templates import PLACEHOLDERS, PromptBuilder, validate_template
from rewardkit.judges.voting import REDUCERS, available_reducers, reducer, select_top, vote

__all__ = [
    "PLACEHOLDERS",
    "REDUCERS",
    "JudgeConfig",
    "JudgeQuery",
    "JudgeResult",
    "JudgeReward",
    "Judgment",
    "MetaRM",
    "MetaRMRecord",
    "PairJudgment",
    "PairwiseJudge",
    "PairwiseResult",
    "ParsedJudgment",
    "ParsedPreference",
    "PointwiseJudge",
    "PromptBuilder",
    "RemoteMetaRM",
    "TransformersMetaRM",
    "available_reducers",
    "build_constraint",
    "expected_scores",
    "format_meta_input",
    "parse_judgment",
    "parse_preference",
    "read_meta_records",
    "records_from_result",
    "reducer",
    "select_top",
    "validate_template",
    "vote",
    "write_meta_records",
]
