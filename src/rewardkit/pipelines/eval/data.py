"""Labelled preference data for judge evaluation: every format becomes `EvalItem`s.

Formats (`--format`, or detected from the first row's keys by `auto`):

| name          | row                                                                   |
|---------------|-----------------------------------------------------------------------|
| rewardbench   | `prompt`, `chosen` (str), `rejected` (str), `subset`? (RewardBench v1) |
| rewardbench2  | `prompt`, `chosen: [..]`, `rejected: [..]`, `subset` (Ties: all correct above all incorrect) |
| pairs         | `input`, `output_1`, `output_2`, `label` 1/2 (LLMBar, MT-Bench human)  |
| pandalm       | `instruction`, `input`, `response1`, `response2`, `annotator1..3` (majority; 0 = tie) |
| hh-rlhf       | `chosen`, `rejected` dialogues; split into prompt and final assistant turn |
| hhh           | Prometheus `chosen_instruction` / `rejected_instruction` (HHH alignment) |
| best-of-n     | `prompt`, `responses: [..]`, `best` (index) or `correct: [bool..]`, `reference`? |
| gsm8k         | `question`, `answer`: the gold solution against another problem's (wrong) one |

Sources: JSONL (also `.gz`), a JSON array, Parquet, a `datasets` folder, a folder of such
files (each file its own subset), or a Hub id through `datasets.load_dataset`. A row that
cannot be evaluated (a gold tie, identical responses, a malformed row) is never dropped
silently: it becomes a `Skipped` with a reason code, counted in the results.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rewardkit.errors import ConfigError, InputError, MissingDependencyError

__all__ = [
    "FORMATS",
    "DataFormat",
    "EvalItem",
    "Loaded",
    "Rule",
    "Skipped",
    "detect_format",
    "item_from_record",
    "load_items",
]

DataFormat = Literal[
    "auto",
    "rewardbench",
    "rewardbench2",
    "pairs",
    "pandalm",
    "hh-rlhf",
    "hhh",
    "best-of-n",
    "gsm8k",
]
FORMATS: tuple[str, ...] = get_args(DataFormat)
#: How an item is won: "separate" = every good response scores above every bad one (a pair,
#: RewardBench best-of-4 and Ties); "top" = the top-scored responses are all good (best-of-n).
Rule = Literal["separate", "top"]


@dataclass(frozen=True)
class EvalItem:
    """One labelled query: responses, which of them are good, and where it comes from."""

    id: str
    prompt: str
    responses: tuple[str, ...]
    good: tuple[bool, ...]
    subset: str = "all"
    reference: str | None = None
    rule: Rule = "separate"
    #: RewardBench 2 Ties: "ref:<n>" or "tied:<n>" (the subset's composite score pairs them).
    group: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.responses) != len(self.good) or len(self.responses) < 2:
            raise ValueError("EvalItem needs >= 2 responses and one label per response")


@dataclass(frozen=True)
class Skipped:
    """A row that cannot be scored, and why (a reason code, then a message)."""

    id: str
    reason: str
    message: str = ""


@dataclass
class Loaded:
    """Items of one or more sources, and what was skipped."""

    items: list[EvalItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)

    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))


class _Skip(Exception):  # internal control flow: never escapes this module
    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- detection ---------------------------------------------------------------------------


def detect_format(record: dict[str, Any]) -> str:
    """The format a row looks like, or `InputError` naming the keys it has."""
    keys = set(record)
    if {"output_1", "output_2", "label"} <= keys:
        return "pairs"
    if {"response1", "response2"} <= keys and any(k.startswith("annotator") for k in keys):
        return "pandalm"
    if {"chosen_instruction", "rejected_instruction"} <= keys:
        return "hhh"
    if {"chosen", "rejected"} <= keys:
        if isinstance(record["chosen"], list):
            return "rewardbench2"
        return "rewardbench" if "prompt" in keys else "hh-rlhf"
    if "responses" in keys and ({"best", "correct"} & keys):
        return "best-of-n"
    if {"question", "answer"} <= keys:
        return "gsm8k"
    raise InputError(
        f"cannot tell the data format from the keys {sorted(keys)}; give --format "
        f"({', '.join(f for f in FORMATS if f != 'auto')})"
    )


# -- one row -----------------------------------------------------------------------------


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if isinstance(value, list):  # chat messages
        value = _dialogue(value)
    if not isinstance(value, str):
        got = "missing" if value is None else type(value).__name__
        raise _Skip("bad_row", f"{key!r} must be a string, got {got}")
    return value


def _dialogue(messages: list[Any]) -> str:
    turns = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise _Skip("bad_row", "chat messages need string 'content'")
        turns.append((str(m.get("role", "user")), m["content"]))
    if len(turns) == 1:
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in turns)


def _texts(record: dict[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Skip("bad_row", f"{key!r} must be a list of strings")
    return value


def _pair(prompt: str, chosen: str, rejected: str, **kw: Any) -> dict[str, Any]:
    if chosen.strip() == rejected.strip():
        raise _Skip("identical_responses", "chosen and rejected are the same text")
    return {"prompt": prompt, "responses": (chosen, rejected), "good": (True, False), **kw}


def _rewardbench(r: dict[str, Any]) -> dict[str, Any]:
    return _pair(_text(r, "prompt"), _text(r, "chosen"), _text(r, "rejected"))


def _rewardbench2(r: dict[str, Any]) -> dict[str, Any]:
    chosen, rejected = _texts(r, "chosen"), _texts(r, "rejected")
    if not chosen or not rejected:
        raise _Skip("bad_row", "needs at least one chosen and one rejected response")
    out: dict[str, Any] = {
        "prompt": _text(r, "prompt"),
        "responses": (*chosen, *rejected),
        "good": (True,) * len(chosen) + (False,) * len(rejected),
    }
    if str(r.get("subset", "")).lower() == "ties":
        out["group"] = str(r.get("id", ""))  # "ref:12" / "tied:12"
    return out


def _pairs(r: dict[str, Any]) -> dict[str, Any]:
    label = str(r.get("label", "")).strip()
    if label not in ("1", "2"):
        raise _Skip("gold_tie" if label in ("0", "tie") else "bad_row", f"label {label!r}")
    a, b = _text(r, "output_1"), _text(r, "output_2")
    chosen, rejected = (a, b) if label == "1" else (b, a)
    return _pair(_text(r, "input"), chosen, rejected)


def _pandalm(r: dict[str, Any]) -> dict[str, Any]:
    votes = Counter(str(r[k]).strip() for k in sorted(r) if k.startswith("annotator"))
    top, count = votes.most_common(1)[0] if votes else ("", 0)
    if count * 2 <= sum(votes.values()):
        raise _Skip("no_majority", f"annotators split {dict(votes)}")
    if top == "0":
        raise _Skip("gold_tie", "the annotators' majority is a tie")
    if top not in ("1", "2"):
        raise _Skip("bad_row", f"annotator label {top!r}")
    prompt = _text(r, "instruction")
    extra = r.get("input")
    if isinstance(extra, str) and extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    a, b = _text(r, "response1"), _text(r, "response2")
    chosen, rejected = (a, b) if top == "1" else (b, a)
    return _pair(prompt, chosen, rejected)


_ASSISTANT = "\n\nAssistant:"


def _hh_rlhf(r: dict[str, Any]) -> dict[str, Any]:
    head_c, sep_c, chosen = _text(r, "chosen").rpartition(_ASSISTANT)
    head_r, sep_r, rejected = _text(r, "rejected").rpartition(_ASSISTANT)
    if not sep_c or not sep_r:
        raise _Skip("bad_row", "no final 'Assistant:' turn")
    if head_c.strip() != head_r.strip():
        raise _Skip("prefix_mismatch", "chosen and rejected dialogues differ before the last turn")
    return _pair(head_c.strip(), chosen.strip(), rejected.strip())


_HHH = re.compile(
    r"###The instruction to evaluate:\n(?P<prompt>.*?)\n+###Response to evaluate:\n(?P<response>.*?)\n+###Score Rubrics:",
    re.S,
)


def _hhh(r: dict[str, Any]) -> dict[str, Any]:
    parts = []
    for key in ("chosen_instruction", "rejected_instruction"):
        match = _HHH.search(_text(r, key))
        if match is None:
            raise _Skip("bad_row", f"{key}: no instruction/response sections")
        parts.append(match)
    if parts[0]["prompt"].strip() != parts[1]["prompt"].strip():
        raise _Skip("bad_row", "chosen and rejected instructions differ")
    return _pair(
        parts[0]["prompt"].strip(), parts[0]["response"].strip(), parts[1]["response"].strip()
    )


def _best_of_n(r: dict[str, Any]) -> dict[str, Any]:
    responses = _texts(r, "responses")
    if "correct" in r:
        good = r["correct"]
        if not isinstance(good, list) or len(good) != len(responses):
            raise _Skip("bad_row", "'correct' must be a list of booleans, one per response")
        good = tuple(bool(g) for g in good)
    else:
        best = r.get("best")
        if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < len(responses):
            raise _Skip("bad_row", f"'best' must be an index into responses, got {best!r}")
        good = tuple(i == best for i in range(len(responses)))
    if all(good) or not any(good):
        raise _Skip("no_contrast", "every response has the same label")
    return {
        "prompt": _text(r, "prompt"),
        "responses": tuple(responses),
        "good": good,
        "rule": "top",
    }


_CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "rewardbench": _rewardbench,
    "rewardbench2": _rewardbench2,
    "pairs": _pairs,
    "pandalm": _pandalm,
    "hh-rlhf": _hh_rlhf,
    "hhh": _hhh,
    "best-of-n": _best_of_n,
}


def item_from_record(
    record: dict[str, Any], fmt: str, *, id: str, subset: str
) -> EvalItem | Skipped:
    """One row as an `EvalItem`, or a `Skipped` saying why it cannot be."""
    if fmt == "gsm8k":
        raise ConfigError("gsm8k rows pair with each other; use load_items")
    try:
        fields = _CONVERTERS[fmt](record)
    except _Skip as skip:
        return Skipped(id, skip.reason, skip.message)
    reference = record.get("reference")
    if reference is not None and not isinstance(reference, str):
        reference = json.dumps(reference) if isinstance(reference, dict | list) else str(reference)
    row_subset = record.get("subset")
    if fmt == "hhh" and row_subset is None:  # HHH alignment: harmless / helpful / honest / other
        row_subset = record.get("source")
    extra = {k: v for k, v in record.items() if isinstance(v, str | int | float | bool)}
    return EvalItem(
        id=id,
        subset=str(row_subset) if row_subset not in (None, "") else subset,
        reference=reference,
        fields=extra,
        **fields,
    )


def _gsm8k_items(
    records: list[tuple[int, dict[str, Any]]], *, source: str, subset: str
) -> Iterator[EvalItem | Skipped]:
    """Each problem's gold solution against the next problem's solution (a wrong answer)."""
    answers = [_final(r.get("answer")) for _, r in records]
    for i, (line, record) in enumerate(records):
        rid = str(record.get("id", f"{source}:{line}"))
        question, solution = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(solution, str) or not answers[i]:
            yield Skipped(rid, "bad_row", "needs 'question' and an 'answer' ending in '#### N'")
            continue
        j = next(
            (
                j % len(records)
                for j in range(i + 1, i + len(records))
                if answers[j % len(records)] and answers[j % len(records)] != answers[i]
            ),
            None,
        )
        if j is None:
            yield Skipped(rid, "no_contrast", "no other problem with a different answer")
            continue
        wrong = str(records[j][1]["answer"])
        yield EvalItem(
            id=rid,
            prompt=question,
            responses=(solution, wrong),
            good=(True, False),
            subset=subset,
            reference=answers[i],
        )


def _final(answer: Any) -> str | None:
    if not isinstance(answer, str) or "####" not in answer:
        return None
    return answer.rsplit("####", 1)[1].strip().replace(",", "") or None


# -- sources -----------------------------------------------------------------------------


def load_items(
    sources: list[str], fmt: str = "auto", *, split: str = "test", limit: int | None = None
) -> Loaded:
    """Every item of every source (`limit`: at most that many items per source)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    loaded = Loaded()
    for source in sources:
        for name, subset, records in _open(source, split):
            _convert(loaded, records, fmt, source=name, subset=subset, limit=limit)
    if not loaded.items:
        why = ", ".join(f"{r} x{n}" for r, n in loaded.skipped_counts().items()) or "no rows"
        raise InputError(f"no usable items in {', '.join(sources)} ({why})")
    ids = Counter(item.id for item in loaded.items)
    repeated = [i for i, n in ids.items() if n > 1]
    if repeated:
        raise InputError(f"item ids must be unique across inputs; repeated: {repeated[:3]}")
    return loaded


def _convert(
    loaded: Loaded,
    records: Iterator[tuple[int, dict[str, Any] | str]],
    fmt: str,
    *,
    source: str,
    subset: str,
    limit: int | None,
) -> None:
    rows: list[tuple[int, dict[str, Any]]] = []
    chosen = fmt
    for line, record in records:
        if isinstance(record, str):  # unreadable line: say so, go on
            loaded.skipped.append(Skipped(f"{source}:{line}", "bad_row", record))
            continue
        if chosen == "auto":
            chosen = detect_format(record)
        rows.append((line, record))
    if chosen == "auto":
        return
    loaded.formats[chosen] += len(rows)
    made = 0
    if chosen == "gsm8k":
        results: Iterator[EvalItem | Skipped] = _gsm8k_items(rows, source=source, subset=subset)
    else:
        results = (
            item_from_record(r, chosen, id=str(r.get("id") or f"{source}:{line}"), subset=subset)
            for line, r in rows
        )
    for result in results:
        if limit is not None and made >= limit:
            break
        if isinstance(result, Skipped):
            loaded.skipped.append(result)
        else:
            loaded.items.append(result)
            made += 1


_LLMBAR_SUBSETS = {  # file stem -> RewardBench v1 subset name
    "llmbar_natural": "llmbar-natural",
    "llmbar_adversarial_neighbor": "llmbar-adver-neighbor",
    "llmbar_adversarial_gptinst": "llmbar-adver-GPTInst",
    "llmbar_adversarial_gptout": "llmbar-adver-GPTOut",
    "llmbar_adversarial_manual": "llmbar-adver-manual",
}

_Records = Iterator[tuple[int, dict[str, Any] | str]]


def _subset_name(path: Path) -> str:
    stem = path.name.split(".")[0]
    if stem.lower() in ("test", "train", "validation", "dev") and path.parent.name:
        return path.parent.name  # hh-rlhf-harmless/test.jsonl.gz -> "hh-rlhf-harmless"
    return _LLMBAR_SUBSETS.get(stem.lower(), stem)


def _open(source: str, split: str) -> Iterator[tuple[str, str, _Records]]:
    """(name, default subset, rows) for each file behind `source`."""
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            yield path.name, path.name, _dataset_folder(path, split)
            return
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))
        if not files:
            raise InputError(
                f"{path}: no data files ({', '.join(_SUFFIXES)}) and not a datasets folder"
            )
        for file in files:
            yield file.stem, _subset_name(file), _file_rows(file)
        return
    if path.is_file():
        yield path.stem.split(".")[0], _subset_name(path), _file_rows(path)
        return
    if re.fullmatch(r"[\w.-]+/[\w.-]+(:[\w.-]+)?", source) and not source.startswith("."):
        name, _, hub_split = source.partition(":")
        yield name, name.rsplit("/", 1)[-1], _hub_rows(name, hub_split or split)
        return
    raise InputError(f"input not found: {source} (a file, a folder, or a Hub id owner/name)")


_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


def _file_rows(path: Path) -> _Records:
    name = path.name
    if name.endswith(".parquet"):
        yield from _table_rows(_read_parquet(path))
        return
    opener: Any = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if name.endswith((".json", ".json.gz")) and stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON: {exc}") from None
        for number, row in enumerate(rows, start=1):
            yield number, row if isinstance(row, dict) else f"row {number} is not an object"
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"line {number}: not JSON ({exc.msg})"
            continue
        yield number, row if isinstance(row, dict) else f"line {number} is not a JSON object"


def _read_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "data", "Parquet input") from None
    return pq.read_table(path).to_pylist()


def _table_rows(rows: list[dict[str, Any]]) -> _Records:
    yield from enumerate(rows, start=1)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "data", "datasets folders and Hub ids") from None
    return datasets


def _pick_split(data: Any, split: str, where: str) -> Any:
    if isinstance(data, _datasets().DatasetDict):
        names = list(data.keys())
        if split in names:
            return data[split]
        if len(names) == 1:
            return data[names[0]]
        raise InputError(f"{where}: no split {split!r}; splits: {', '.join(names)} (give --split)")
    return data


def _dataset_folder(path: Path, split: str) -> _Records:
    data = _pick_split(_datasets().load_from_disk(str(path)), split, str(path))
    for number, row in enumerate(data, start=1):
        yield number, dict(row)


def _hub_rows(name: str, split: str) -> _Records:
    """A Hub dataset through `datasets.load_dataset` (the local HF cache, or the network)."""
    try:
        data = _datasets().load_dataset(name, split=split)
    except (FileNotFoundError, ConnectionError, ValueError) as exc:
        raise InputError(
            f"{name}: no such file or folder, and loading it as a Hub dataset (split {split!r}) "
            f"failed: {exc}"
        ) from None
    for number, row in enumerate(data, start=1):
        yield number, dict(row)
