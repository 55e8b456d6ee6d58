"""A measured toy run of the whole meta-RM path: RFT data -> train meta-rm -> guided voting.

The judge is `ScriptedJudge`: right with probability `p_correct` per sample, and its wrong
judgments contain a telltale sentence. Below one half, plain voting over k samples follows
the (wrong) majority; a meta RM that learned the telltale from RFT data keeps the right
judgments and the vote recovers. Used by benchmarks/bench_meta_rm.py and a slow test.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, JudgeQuery, PointwiseJudge, TransformersMetaRM
from rewardkit.pipelines.spct.data import LabelledItem
from rewardkit.pipelines.spct.meta_rm import MetaRMTrainConfig, train_meta_rm
from rewardkit.pipelines.spct.rft import RFTConfig, run_rft
from rewardkit.pipelines.spct.toy import ScriptedJudge, tiny_classifier

__all__ = ["MetaRMExperiment", "make_items", "run_meta_rm_experiment"]

# A short template keeps the tiny models' inputs small; same placeholders as the default.
TEMPLATE = "Score each response 1-10.\n{query}\n{responses}\nEnd with Scores: {score_example}"
_TOPICS = ["rivers", "prime numbers", "baking bread", "tides", "sorting lists", "volcanoes"]


@dataclass(frozen=True)
class MetaRMExperiment:
    voting_accuracy: float
    meta_rm_accuracy: float
    eval_items: int
    train_records: int
    meta_rm_heldout_accuracy: float | None
    k: int
    keep: int
    p_correct: float


def make_items(n: int, seed: int, prefix: str) -> list[LabelledItem]:
    """Pairs of a "good ..." and a "bad ..." answer in random order, labelled."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        topic = rng.choice(_TOPICS)
        good = f"good answer about {topic} number {i}"
        bad = f"bad answer about {topic} number {i}"
        first_good = rng.random() < 0.5
        responses = (good, bad) if first_good else (bad, good)
        items.append(
            LabelledItem(
                f"{prefix}{i}", f"Explain {topic} ({i}).", responses, 0 if first_good else 1
            )
        )
    return items


async def _accuracy(judge: PointwiseJudge, items: list[LabelledItem]) -> float:
    hits = 0
    for item in items:
        result = await judge.judge(JudgeQuery(item.prompt, item.responses, id=item.id))
        rewards = result.rewards
        assert item.best is not None
        best = rewards[item.best]
        others = [r for i, r in enumerate(rewards) if i != item.best]
        hits += best is not None and all(o is not None and best > o for o in others)
    return hits / len(items)


def run_meta_rm_experiment(
    workdir: str | Path,
    *,
    train_items: int = 40,
    eval_items: int = 60,
    k: int = 8,
    keep: int = 4,
    p_correct: float = 0.4,
    epochs: int = 3,
    seed: int = 0,
) -> MetaRMExperiment:
    """RFT on train items -> meta-RM training -> Voting@k vs MetaRM@k on held-out items."""
    work = Path(workdir)
    script = ScriptedJudge(p_correct, telltale=True, seed=seed)
    config = JudgeConfig(template=TEMPLATE)
    rft_judge = PointwiseJudge(MockBackend(script), config)
    train = make_items(train_items, seed, "train-")
    summary = asyncio.run(
        run_rft(train, rft_judge, work / "rft", RFTConfig(n_rft=k, seed=seed, progress=False))
    )
    records = (work / "rft" / "meta_rm.jsonl").read_text(encoding="utf-8").splitlines()
    tiny_classifier(records, work / "base", seed=seed)
    trained = train_meta_rm(
        MetaRMTrainConfig(
            model=str(work / "base"),
            data=[str(work / "rft" / "meta_rm.jsonl")],
            output_dir=str(work / "meta-rm"),
            max_length=256,
            eval_fraction=0.2,
            seed=seed,
            train={
                "num_train_epochs": epochs,
                "per_device_train_batch_size": 16,
                "learning_rate": 3e-3,
                "logging_steps": 5,
                "save_strategy": "no",
                "use_cpu": True,
                "disable_tqdm": True,
            },
        )
    )
    held_out = make_items(eval_items, seed + 1, "eval-")
    voting = PointwiseJudge(MockBackend(script), JudgeConfig(template=TEMPLATE, samples=k))
    guided = PointwiseJudge(
        MockBackend(script),
        JudgeConfig(template=TEMPLATE, samples=k, keep=keep),
        meta_rm=TransformersMetaRM(str(work / "meta-rm"), max_length=256),
    )
    return MetaRMExperiment(
        voting_accuracy=asyncio.run(_accuracy(voting, held_out)),
        meta_rm_accuracy=asyncio.run(_accuracy(guided, held_out)),
        eval_items=eval_items,
        train_records=summary.meta_rm_records,
        meta_rm_heldout_accuracy=trained.eval_accuracy,
        k=k,
        keep=keep,
        p_correct=p_correct,
    )
