"""Judge prompts for training, built exactly as the judge builds them at inference.

The prompt of one sample is the judge's own template (`PromptBuilder`) over the responses
in one display order, fenced with a nonce from the item, the order and the sample index;
the parser gets the same views and nonce. A hinted prompt appends one line naming the best
response (or the rating) — SPCT's hinted sampling for items the judge never gets right —
but the SFT row keeps the plain prompt: the judge must learn to judge without the hint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rewardkit.judges.grm import plan_orders
from rewardkit.judges.parsing import ParsedJudgment, parse_judgment
from rewardkit.judges.templates import PromptBuilder, make_nonce, response_view
from rewardkit.pipelines.spct.data import LabelledItem
from rewardkit.rules.judge_agreement import JudgeLabel

__all__ = ["RenderedPrompt", "hint_text", "render_prompt", "sample_orders"]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """One judge request's prompt and what its parser needs."""

    text: str
    order: tuple[int, ...]  # order[p] = input index of the response shown at position p
    views: tuple[str, ...]  # the responses as shown (summary or full view)
    nonce: str

    def parse(self, output: str) -> ParsedJudgment:
        return parse_judgment(output, len(self.order), responses=self.views, nonce=self.nonce)

    def to_input_order(self, shown_scores: tuple[int, ...]) -> tuple[int, ...]:
        by_index = dict(zip(self.order, shown_scores, strict=True))
        return tuple(by_index[i] for i in range(len(self.order)))

    def label(self, item: LabelledItem, *, with_views: bool = True) -> JudgeLabel:
        """The agreement label in *shown* positions (what `judge_agreement` reads)."""
        best = None if item.best is None else self.order.index(item.best)
        return JudgeLabel(
            n=len(self.order),
            best=best,
            rating=item.rating,
            nonce=self.nonce,
            responses=self.views if with_views else (),
        )


def sample_orders(item: LabelledItem, k: int, seed: int) -> list[tuple[int, ...]]:
    """k display orders for the item (every permutation in turn for small n, as the judge
    does), fixed by (seed, item id) so a resumed run samples the same orders."""
    rng = random.Random(make_nonce("spct-orders", seed, item.id))
    return plan_orders(len(item.responses), k, True, rng)


def render_prompt(
    prompts: PromptBuilder,
    item: LabelledItem,
    order: tuple[int, ...],
    *,
    salt: object = 0,
) -> RenderedPrompt:
    shown = [item.responses[i] for i in order]
    views = tuple(response_view(text, prompts.view) for text in shown)
    nonce = make_nonce("spct-fence", item.id, item.prompt, tuple(shown), order, salt)
    text = prompts.render_views(item.prompt, views, nonce)
    return RenderedPrompt(text, order, views, nonce)


def hint_text(item: LabelledItem, order: tuple[int, ...]) -> str:
    """The line a hinted prompt ends with: where the best response is shown, or the rating."""
    if item.best is not None:
        return (
            f"\n\nHint: the best response is Response {order.index(item.best) + 1}; "
            "your scores must rank it strictly highest."
        )
    return f"\n\nHint: the correct score for this response is {item.rating}."
