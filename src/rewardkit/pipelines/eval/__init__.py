"""Judge evaluation: accuracy on labelled preference data, the k-curve, bias probes, reports.

    loaded = load_items(["llmbar/"])                       # any supported format, detected
    judge = LengthJudge()                                  # or PointwiseEvalJudge(PointwiseJudge(...))
    results = await run_eval(loaded.items, judge, Path("out"), loaded=loaded)
    rows = await run_probes(loaded.items, judge)

Modules: `data` (formats and sources), `stats` (outcomes, the k-subset estimator, bootstrap
CIs, RewardBench aggregates), `scorers` (judges as draws), `run` (one evaluation),
`probes`, `plots` and `report` (the HTML page). Nothing here imports torch or matplotlib
until a classifier judge or a plot is used.
"""

from rewardkit.pipelines.eval.data import (
    FORMATS,
    EvalItem,
    Loaded,
    Skipped,
    detect_format,
    load_items,
)
from rewardkit.pipelines.eval.probes import MASTER_KEYS, PROBES, ProbeResult, pad, run_probes
from rewardkit.pipelines.eval.report import register_renderer, render_report, write_report
from rewardkit.pipelines.eval.run import EvalSettings, judge_items, run_eval, summarize, write_eval
from rewardkit.pipelines.eval.scorers import (
    ClassifierJudge,
    CostMeter,
    EvalJudge,
    Judged,
    LengthJudge,
    PairwiseEvalJudge,
    PointwiseEvalJudge,
    SpecJudge,
)
from rewardkit.pipelines.eval.stats import (
    Draw,
    Estimate,
    bootstrap_ci,
    estimate_at_k,
    outcome,
    rb1_sections,
    rb2_ties_score,
    wilson_interval,
)

__all__ = [
    "FORMATS",
    "MASTER_KEYS",
    "PROBES",
    "ClassifierJudge",
    "CostMeter",
    "Draw",
    "Estimate",
    "EvalItem",
    "EvalJudge",
    "EvalSettings",
    "Judged",
    "LengthJudge",
    "Loaded",
    "PairwiseEvalJudge",
    "PointwiseEvalJudge",
    "ProbeResult",
    "Skipped",
    "SpecJudge",
    "bootstrap_ci",
    "detect_format",
    "estimate_at_k",
    "judge_items",
    "load_items",
    "outcome",
    "pad",
    "rb1_sections",
    "rb2_ties_score",
    "register_renderer",
    "render_report",
    "run_eval",
    "run_probes",
    "summarize",
    "wilson_interval",
    "write_eval",
    "write_report",
]
