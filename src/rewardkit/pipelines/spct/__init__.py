"""SPCT judge training (DeepSeek-GRM): RFT data, judge SFT, rule-based judge RL, meta RM.

    rewardkit spct rft DATA -o rft/ --backend http --base-url ... --model judge   # data
    rewardkit train judge-sft --config sft.yaml       # rft/sft.jsonl -> SFT (TRL)
    rewardkit train judge-grpo --config grpo.yaml     # rft/rl.jsonl + judge_agreement (TRL)
    rewardkit train meta-rm --config meta.yaml        # rft/meta_rm.jsonl -> --meta-rm PATH

Modules: `data` (labelled items, gold labels), `prompting` (judge prompts as the judge
builds them), `store` (the resumable trajectory log), `rft`, `sft`, `grpo`, `meta_rm`,
`toy` (tiny models and a scripted judge for tests and the benchmark). Heavy imports
(torch, transformers, trl) happen inside the training functions only.
"""

from rewardkit.pipelines.spct.data import ItemError, LabelledItem, gold_labels, read_items
from rewardkit.pipelines.spct.rft import RFTConfig, RFTSummary, load_items, rft, run_rft

__all__ = [
    "ItemError",
    "LabelledItem",
    "RFTConfig",
    "RFTSummary",
    "gold_labels",
    "load_items",
    "read_items",
    "rft",
    "run_rft",
]
