"""Answer files for win rates: Arena-Hard's layout and plain JSONL, paired by prompt id.

Arena-Hard (`question.jsonl`, `model_answer/<model>.jsonl`):

    {"uid": "...", "prompt": "..."}                                       # a question
    {"uid": "...", "model": "gpt-4-0314",
     "messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": {"answer": "..."}}]}    # an answer

Plain rows work too: an id in `uid`, `question_id` or `id`; the answer in `answer`,
`response`, `completion` or `output` (a string or chat messages); the prompt in `prompt`
(or the first user message), or from a questions file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardkit.errors import InputError
from rewardkit.io import iter_rows
from rewardkit.pipelines.audit.winrate import PairInput

__all__ = ["load_answers", "load_questions", "pair_answers"]

_ID_KEYS = ("uid", "question_id", "id")
_ANSWER_KEYS = ("answer", "response", "completion", "output")


def _row_id(row: dict[str, Any], where: str) -> str:
    for key in _ID_KEYS:
        if row.get(key) is not None:
            return str(row[key])
    raise InputError(f"{where}: no id ({', '.join(_ID_KEYS)})")


def _text(content: Any) -> str | None:
    """Message content as text: a string, Arena-Hard's {"answer": ...}, or text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("answer"), str):
        return str(content["answer"])
    if isinstance(content, list):
        parts = [
            p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "".join(str(p) for p in parts) if parts else None
    return None


def _messages_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    messages = row.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _answer(row: dict[str, Any]) -> str | None:
    for key in _ANSWER_KEYS:
        if key in row:
            value = row[key]
            if isinstance(value, list):  # chat messages: the last assistant turn
                turns = [m for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
                return _text(turns[-1].get("content")) if turns else None
            return _text(value)
    turns = [m for m in _messages_of(row) if m.get("role") == "assistant"]
    return _text(turns[-1].get("content")) if turns else None


def _prompt(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("prompt"), str):
        return str(row["prompt"])
    turns = row.get("turns")  # Arena-Hard v0.1 questions
    if isinstance(turns, list) and turns and isinstance(turns[0], dict):
        return _text(turns[0].get("content"))
    users = [m for m in _messages_of(row) if m.get("role") == "user"]
    return _text(users[0].get("content")) if users else None


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if not path.exists():
        raise InputError(f"file not found: {path}")
    out = []
    for row in iter_rows(path):
        where = f"{path}:{row.line}"
        if row.record is None:
            raise InputError(f"{where}: {row.error}")
        out.append((where, row.record))
    return out


def load_questions(path: Path) -> dict[str, str]:
    """id -> prompt."""
    questions: dict[str, str] = {}
    for where, row in _rows(path):
        prompt = _prompt(row)
        if prompt is None:
            raise InputError(f"{where}: no prompt (a 'prompt' string or a user message)")
        questions[_row_id(row, where)] = prompt
    return questions


def load_answers(path: Path) -> dict[str, tuple[str | None, str]]:
    """id -> (prompt if the row carries one, answer). A repeated id is an error."""
    answers: dict[str, tuple[str | None, str]] = {}
    for where, row in _rows(path):
        key = _row_id(row, where)
        answer = _answer(row)
        if answer is None:
            raise InputError(
                f"{where}: no answer ({', '.join(_ANSWER_KEYS)} or an assistant message)"
            )
        if key in answers:
            raise InputError(f"{where}: id {key!r} appears twice")
        answers[key] = (_prompt(row), answer)
    return answers


def pair_answers(
    policy: dict[str, tuple[str | None, str]],
    baseline: dict[str, tuple[str | None, str]],
    questions: dict[str, str] | None = None,
    *,
    limit: int | None = None,
) -> tuple[list[PairInput], dict[str, int]]:
    """Pairs for every id both files answer, and counts of the ids left out and why."""
    skipped = {
        "only_in_baseline": sum(1 for k in baseline if k not in policy),
        "only_in_policy": sum(1 for k in policy if k not in baseline),
        "no_prompt": 0,
    }
    pairs: list[PairInput] = []
    for key, (prompt, answer) in policy.items():
        if key not in baseline:
            continue
        text = (questions or {}).get(key) or prompt or baseline[key][0]
        if text is None:
            skipped["no_prompt"] += 1
            continue
        pairs.append(PairInput(key, text, answer, baseline[key][1]))
    if limit is not None:
        skipped["over_limit"] = max(0, len(pairs) - limit)
        pairs = pairs[:limit]
    if not pairs:
        raise InputError(
            "no prompt is answered by both files (with a prompt text): check the ids "
            f"(left out: {skipped})"
        )
    return pairs, {k: v for k, v in skipped.items() if v}
