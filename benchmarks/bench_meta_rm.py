"""A trained meta RM against plain voting: Voting@k vs MetaRM@k on held-out items.

The whole SPCT meta-RM path, trained for real on a tiny model built in code:

1. `spct rft` over `--train` labelled pairs with a scripted judge (`ScriptedJudge`): each
   sample is right with probability p; a wrong one swaps the scores and says a telltale
   sentence. RFT writes every non-hinted judgment as a `MetaRMRecord` (meta_rm.jsonl).
2. `train meta-rm` fits a random two-layer Llama classifier (one logit, BCE) on them.
3. On `--eval` held-out pairs, the same judge samples k judgments per pair; Voting@k sums
   all k, MetaRM@k lets the trained meta RM (loaded as `--meta-rm` would) keep the top
   `keep` before summing. Accuracy: the labelled best scored strictly highest.

Below p = 0.5 the wrong judgments are the majority, so voting follows them; the meta RM
recovers the right ones because their errors carry a learnable signal. This shows the
mechanism works end to end; it does not say how much a meta RM helps a real judge, whose
errors carry a weaker signal.

    python benchmarks/bench_meta_rm.py [--quick] [--p 0.4] [--k 8] [--keep 4]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

from rewardkit.pipelines.spct.experiment import run_meta_rm_experiment


def at_least(p: float, k: int, m: int) -> float:
    """P(Bin(k, p) >= m)."""
    return sum(math.comb(k, i) * p**i * (1 - p) ** (k - i) for i in range(m, k + 1))


def voting_theory(p: float, k: int) -> float:
    """Strictly more right than wrong judgments among k: what sum voting should give."""
    return at_least(p, k, k // 2 + 1)


def perfect_meta_theory(p: float, k: int, keep: int) -> float:
    """A meta RM that ranks every right judgment first: the kept `keep` vote right when
    more than keep/2 of the k are right."""
    return at_least(p, k, keep // 2 + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items, one epoch less")
    parser.add_argument("--p", type=float, default=0.4, help="per-sample judge accuracy")
    parser.add_argument("--k", type=int, default=8, help="judgments sampled per item")
    parser.add_argument("--keep", type=int, default=4, help="judgments the meta RM keeps")
    parser.add_argument("--train", type=int, default=40, help="RFT (training) items")
    parser.add_argument("--eval", type=int, default=100, help="held-out items")
    args = parser.parse_args()
    train, held, epochs = (16, 40, 3) if args.quick else (args.train, args.eval, 3)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-meta-rm-") as work:
        result = run_meta_rm_experiment(
            work,
            train_items=train,
            eval_items=held,
            k=args.k,
            keep=args.keep,
            p_correct=args.p,
            epochs=epochs,
        )
    elapsed = time.perf_counter() - start
    print(
        f"\nmeta RM vs voting: scripted judge p={args.p}, k={args.k}, keep={args.keep}; "
        f"meta RM trained on {result.train_records} RFT judgments of {train} items "
        f"(held-out judgment accuracy {result.meta_rm_heldout_accuracy:.3f}); {elapsed:.0f} s"
    )
    print(f"{'method':<12} {'accuracy':>9} {'items':>6}")
    print(
        f"{'Voting@' + str(args.k):<12} {result.voting_accuracy:>9.3f} {held:>6}"
        f"   (binomial theory {voting_theory(args.p, args.k):.3f})"
    )
    print(
        f"{'MetaRM@' + str(args.k):<12} {result.meta_rm_accuracy:>9.3f} {held:>6}"
        f"   (a perfect meta RM: {perfect_meta_theory(args.p, args.k, args.keep):.3f})"
    )
    ratio = result.meta_rm_accuracy / result.voting_accuracy if result.voting_accuracy else math.inf
    print(f"MetaRM@{args.k} / Voting@{args.k} = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
