"""Labelled judge-training items: three input forms, and gold labels from `rewardkit judge`.

    {"input", "output_1", "output_2", "label": "1" | "2"}    # judge-eval pairs (LLMBar, MT-Bench)
    {"prompt", "responses": [...], "best": i}                 # best-of-n, gold best index
    {"prompt", "response", "rating": r}                       # one response, gold rating 1-10

Files are JSONL (or Parquet / a `datasets` folder, via `rewardkit.io`) or one JSON array
(the judge-eval files). Rows without a label (`{"prompt", "responses"}`) take theirs from
a `rewardkit judge` output over the same rows (`gold_labels`): best = the strict argmax of
the gold rewards; a tie, an unscored response or an errored line leaves the item
unlabelled, with that reason — never a guessed label.

A labelled pair or best-of-n row is read by `rewardkit eval`'s reader
(`pipelines.eval.data.item_from_record`, formats `pairs` and `best-of-n`), so both commands
take the same labels the same way: a tie label (`0`/`tie`) or two identical responses make
the row unusable, with eval's reason code. What stays here is SPCT's own: rows without a
label, single-response ratings, responses kept in input order, prompts rendered by
`rewardkit.text` (as `rewardkit judge` renders them), and ids from `rewardkit.io.row_id`
(so `gold_labels` finds a `rewardkit judge` output's lines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import InputError
from rewardkit.io import InputRow, iter_rows, row_id
from rewardkit.judges.parsing import SCORE_MAX, SCORE_MIN
from rewardkit.judges.templates import make_nonce
from rewardkit.pipelines.eval.data import Skipped
from rewardkit.pipelines.eval.data import item_from_record as eval_item
from rewardkit.text import prompt_text

__all__ = [
    "ItemError",
    "LabelledItem",
    "gold_labels",
    "item_from_record",
    "read_items",
    "with_gold",
]


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One query, its responses (input order) and its label: `best` (n >= 2) or `rating`."""

    id: str
    prompt: str
    responses: tuple[str, ...]
    best: int | None = None
    rating: int | None = None

    @property
    def labelled(self) -> bool:
        return self.best is not None or self.rating is not None

    def fingerprint(self) -> str:
        """Changes when the item's content or label does (guards resumed runs)."""
        return make_nonce("item", self.prompt, self.responses, self.best, self.rating)


@dataclass(frozen=True, slots=True)
class ItemError:
    """A row that is not a usable item, and why (`reason` is a code, `message` says more)."""

    id: str
    reason: str
    message: str


def read_items(path: str | Path) -> Iterator[LabelledItem | ItemError]:
    """Items of a file in any of the three forms (labels optional: see `gold_labels`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data not found: {path}")
    for row in _rows(path):
        if row.record is None:
            yield ItemError(row.id, "bad_line", row.error or f"line {row.line}: unreadable")
            continue
        try:
            yield item_from_record(row.record, row.line)
        except _Unusable as exc:
            yield ItemError(row.id, exc.reason, str(exc))
        except InputError as exc:
            yield ItemError(row.id, "bad_line", str(exc))


def _rows(path: Path) -> Iterator[InputRow]:
    if path.suffix != ".json":
        yield from iter_rows(path)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:  # not one JSON document: JSON lines under a .json name
        yield from iter_rows(path)
        return
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of rows, got {type(data).__name__}")
    for number, record in enumerate(data, start=1):
        if isinstance(record, dict):
            yield InputRow(number, record)
        else:
            yield InputRow(number, None, f"row {number}: expected an object")


def item_from_record(record: Mapping[str, Any], line: int) -> LabelledItem:
    """One item; `InputError` names the row and what is wrong."""
    rid = row_id(dict(record), line)

    def bad(message: str) -> InputError:
        return InputError(f"row {line} (id {rid}): {message}")

    if "output_1" in record or "output_2" in record:  # judge-eval pairs
        item = _item(
            rid,
            record.get("input"),
            [record.get("output_1"), record.get("output_2")],
            None,
            None,
            bad,
        )
        if record.get("label") is None:
            return item
        return _labelled(item, record, "pairs", line, bad)
    if "responses" in record:
        responses = record["responses"]
        if not isinstance(responses, list) or not responses:
            raise bad("'responses' must be a non-empty list of strings")
        if len(responses) >= 2 and ("best" in record or "correct" in record):
            item = _item(rid, record.get("prompt"), responses, None, None, bad)
            return _labelled(item, record, "best-of-n", line, bad)
        rating = record.get("rating") if len(responses) == 1 else None
        return _item(rid, record.get("prompt"), responses, record.get("best"), rating, bad)
    if "response" in record:
        return _item(
            rid, record.get("prompt"), [record["response"]], None, record.get("rating"), bad
        )
    raise bad(
        "expected {input, output_1, output_2, label}, {prompt, responses, best} "
        "or {prompt, response, rating}"
    )


class _Unusable(InputError):
    """A well-formed row that `rewardkit eval`'s reader skips (a tie, identical responses)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _labelled(
    item: LabelledItem, record: Mapping[str, Any], fmt: str, line: int, bad: Any
) -> LabelledItem:
    """`item` with the label `rewardkit eval` reads from the row (format `fmt`)."""
    judged = eval_item(dict(record), fmt, id=item.id, subset="all")
    if isinstance(judged, Skipped):
        if judged.reason == "bad_row":
            raise bad(judged.message)
        message = f"row {line} (id {item.id}): {judged.message or judged.reason}"
        raise _Unusable(message, judged.reason)
    if fmt == "pairs":  # eval shows the chosen response first; SPCT keeps the input order
        best = 0 if judged.responses == item.responses else 1
    elif judged.good.count(True) == 1:
        best = judged.good.index(True)
    else:
        raise bad("several responses are marked correct; SPCT needs one 'best'")
    return LabelledItem(item.id, item.prompt, item.responses, best, None)


def _item(
    rid: str, prompt: Any, responses: list[Any], best: Any, rating: Any, bad: Any
) -> LabelledItem:
    if prompt is None:
        raise bad("missing the prompt ('prompt', or 'input' for pairs)")
    try:
        text = prompt_text(prompt)
    except InputError as exc:
        raise bad(str(exc)) from None
    for position, response in enumerate(responses):
        if not isinstance(response, str):
            raise bad(f"response {position} must be a string, got {type(response).__name__}")
    n = len(responses)
    if best is not None:
        if n < 2:
            raise bad("'best' needs at least two responses; give one response a 'rating'")
        if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < n:
            raise bad(f"'best' must be an index in 0..{n - 1}, got {best!r}")
    if rating is not None and (
        isinstance(rating, bool)
        or not isinstance(rating, int)
        or not SCORE_MIN <= rating <= SCORE_MAX
    ):
        raise bad(f"'rating' must be an integer {SCORE_MIN}-{SCORE_MAX}, got {rating!r}")
    return LabelledItem(rid, text, tuple(responses), best, rating)


def gold_labels(path: str | Path) -> dict[str, tuple[int | None, int | None] | ItemError]:
    """Labels from a `rewardkit judge` output: id -> (best, rating), or why there is none.

    n >= 2: best = the response with the strictly highest reward. n = 1: rating = the mean
    of the valid sample scores, rounded half up.
    """
    out: dict[str, tuple[int | None, int | None] | ItemError] = {}
    for row in iter_rows(path):
        record = row.record
        if record is None:
            continue
        rid = row.id
        rewards = record.get("rewards")
        if record.get("error") or not isinstance(rewards, list) or not rewards:
            out[rid] = ItemError(rid, "gold_error", str(record.get("error") or "no rewards"))
        elif any(not isinstance(r, int | float) for r in rewards):
            out[rid] = ItemError(rid, "gold_unscored", "the gold judge left a response unscored")
        elif len(rewards) == 1:
            per_response = record.get("responses") or [{}]
            scores = [s for s in per_response[0].get("scores") or [] if s is not None]
            if not scores:
                out[rid] = ItemError(rid, "gold_unscored", "no valid gold score")
            else:
                out[rid] = (None, int(sum(scores) / len(scores) + 0.5))
        else:
            top = max(rewards)
            winners = [i for i, r in enumerate(rewards) if r == top]
            if len(winners) > 1:
                out[rid] = ItemError(rid, "gold_tie", f"gold rewards tie at the top: {rewards}")
            else:
                out[rid] = (winners[0], None)
    return out


def with_gold(
    items: Iterator[LabelledItem | ItemError],
    labels: Mapping[str, tuple[int | None, int | None] | ItemError],
) -> Iterator[LabelledItem | ItemError]:
    """Items labelled from `gold_labels` (a label already in the row is overridden)."""
    for item in items:
        if isinstance(item, ItemError):
            yield item
            continue
        label = labels.get(item.id)
        if label is None:
            yield ItemError(item.id, "gold_missing", "no line with this id in the gold output")
        elif isinstance(label, ItemError):
            yield label
        else:
            best, rating = label
            n = len(item.responses)
            if (best is not None and not 0 <= best < n) or (rating is not None and n != 1):
                yield ItemError(
                    item.id, "gold_mismatch", "the gold output judged another number of responses"
                )
            else:
                yield LabelledItem(item.id, item.prompt, item.responses, best, rating)
