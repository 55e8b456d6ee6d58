"""Does a judge's verdict agree with the label? SPCT's rule-based reward for judge RL.

DeepSeek-GRM trains its judge online with one rule and no format reward: +1 when the
scores parsed from the judge's output pick the labelled best response *strictly* (n >= 2),
or equal the labelled rating (n = 1); -1 otherwise — a tie, a wrong pick, and an output
with no valid verdict alike. The verdict is read by `rewardkit.judges.parsing` — the
parser the judge itself uses at inference — so the policy is rewarded for exactly the
output the judge will later be trusted to produce: its own last valid `Scores:` line, with
verdicts quoted from a response (between the request's fences) not counted.

The label (`Sample.reference`, a mapping or its JSON string, as TRL columns and verl
ground truths carry it) is

    {"n": 2, "best": 0}                      # shown position of the best response
    {"n": 1, "rating": 7}                    # the gold rating of a lone response
    {..., "nonce": "...", "responses": [...]}  # optional: the prompt's fence nonce and the
                                             # responses as shown, for echo detection

`best` is the position *in the prompt the judge saw* (the training prompts fix one order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rewardkit.errors import InputError
from rewardkit.judges.parsing import SCORE_MAX, SCORE_MIN, parse_judgment
from rewardkit.reward import Reward
from rewardkit.types import RewardResult, Sample, Score, Unscored

__all__ = ["JudgeAgreementReward", "JudgeLabel", "judgment_agrees"]


@dataclass(frozen=True, slots=True)
class JudgeLabel:
    """What a judgment must agree with: the best of n shown responses, or a rating."""

    n: int
    best: int | None = None
    rating: int | None = None
    nonce: str | None = None
    responses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InputError(f"judge label: n must be a positive integer, got {self.n!r}")
        if self.n >= 2:
            if not _is_int(self.best) or not 0 <= self.best < self.n:  # type: ignore[operator]
                raise InputError(
                    f"judge label: n={self.n} needs `best`, an index in 0..{self.n - 1}, "
                    f"got {self.best!r}"
                )
        elif not _is_int(self.rating) or not SCORE_MIN <= self.rating <= SCORE_MAX:  # type: ignore[operator]
            raise InputError(
                f"judge label: n=1 needs `rating`, an integer {SCORE_MIN}-{SCORE_MAX}, "
                f"got {self.rating!r}"
            )
        if self.responses and len(self.responses) != self.n:
            raise InputError(f"judge label: {len(self.responses)} responses given for n={self.n}")

    @classmethod
    def from_reference(cls, reference: Any) -> JudgeLabel:
        """From a mapping or its JSON text; `InputError` says what is wrong."""
        if isinstance(reference, JudgeLabel):
            return reference
        if isinstance(reference, str | bytes):
            try:
                reference = json.loads(reference)
            except ValueError as exc:
                raise InputError(f"judge label is not JSON: {exc}") from None
        if not isinstance(reference, Mapping):
            raise InputError(
                "judge label must be a mapping {n, best} or {n: 1, rating}, "
                f"got {type(reference).__name__}"
            )
        unknown = sorted(set(reference) - {"n", "best", "rating", "nonce", "responses"})
        if unknown:
            raise InputError(f"judge label has unknown key(s) {', '.join(unknown)}")
        responses = reference.get("responses") or ()
        if isinstance(responses, str) or not all(isinstance(r, str) for r in responses):
            raise InputError("judge label: `responses` must be a list of strings")
        return cls(
            n=reference.get("n"),  # type: ignore[arg-type]
            best=reference.get("best"),
            rating=reference.get("rating"),
            nonce=reference.get("nonce"),
            responses=tuple(responses),
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {"n": self.n}
        if self.best is not None:
            data["best"] = self.best
        if self.rating is not None:
            data["rating"] = self.rating
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.responses:
            data["responses"] = list(self.responses)
        return json.dumps(data, ensure_ascii=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def judgment_agrees(
    scores: Sequence[int], *, best: int | None = None, rating: int | None = None
) -> bool:
    """True when `scores` put `best` strictly above every other response (n >= 2), or
    equal `rating` (one response). A tie at the top is not agreement."""
    if len(scores) == 1 and best is None:
        return rating is not None and scores[0] == rating
    if best is None or not 0 <= best < len(scores):
        return False
    top = scores[best]
    return all(top > s for i, s in enumerate(scores) if i != best)


class JudgeAgreementReward(Reward):
    """+1 when the judge output's verdict agrees with the label, -1 otherwise (SPCT).

    `Sample.response` is the judge's output; `Sample.reference` the label (module
    docstring). An output with no valid verdict scores -1 with the parse error in
    `details`; only a malformed *label* is `Unscored` (`bad_label`): that is our data's
    fault, not the policy's.
    """

    name: ClassVar[str] = "judge_agreement"
    value_range: ClassVar[tuple[float, float] | None] = (-1.0, 1.0)

    def __init__(self, correct: float = 1.0, wrong: float = -1.0) -> None:
        if not -1.0 <= wrong < correct <= 1.0:
            raise InputError(
                f"judge_agreement: need -1 <= wrong < correct <= 1, got wrong={wrong}, "
                f"correct={correct}"
            )
        self.correct = float(correct)
        self.wrong = float(wrong)

    def score(self, sample: Sample) -> RewardResult:
        try:
            label = JudgeLabel.from_reference(sample.reference)
        except InputError as exc:
            return Unscored("bad_label", str(exc), raw=sample.response)
        parsed = parse_judgment(
            sample.response, label.n, responses=label.responses, nonce=label.nonce
        )
        if parsed.scores is None:
            return Score(self.wrong, "no_valid_verdict", {"parse_error": parsed.error})
        agrees = judgment_agrees(parsed.scores, best=label.best, rating=label.rating)
        return Score(
            self.correct if agrees else self.wrong,
            "agrees" if agrees else "disagrees",
            {"scores": list(parsed.scores)},
        )
