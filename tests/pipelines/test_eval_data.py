"""Every input format and source of `rewardkit eval`, and the shared real data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import InputError
from rewardkit.pipelines.eval.data import EvalItem, detect_format, load_items

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# (format, row, expected prompt, responses, good, rule)
ROWS: list[tuple[str, dict[str, Any], str, tuple[str, ...], tuple[bool, ...], str]] = [
    (
        "rewardbench",
        {"prompt": "Q", "chosen": "good", "rejected": "bad", "subset": "mt-bench-easy"},
        "Q",
        ("good", "bad"),
        (True, False),
        "separate",
    ),
    (
        "rewardbench2",
        {"prompt": "Q", "chosen": ["g"], "rejected": ["b1", "b2", "b3"], "subset": "Math"},
        "Q",
        ("g", "b1", "b2", "b3"),
        (True, False, False, False),
        "separate",
    ),
    (
        "pairs",
        {"input": "Q", "output_1": "o1", "output_2": "o2", "label": "2"},
        "Q",
        ("o2", "o1"),
        (True, False),
        "separate",
    ),
    (
        "pairs",
        {"input": "Q", "output_1": "o1", "output_2": "o2", "label": 1},
        "Q",
        ("o1", "o2"),
        (True, False),
        "separate",
    ),
    (
        "pandalm",
        {
            "instruction": "Do",
            "input": "this",
            "response1": "r1",
            "response2": "r2",
            "annotator1": "2",
            "annotator2": "2",
            "annotator3": "1",
        },
        "Do\n\nthis",
        ("r2", "r1"),
        (True, False),
        "separate",
    ),
    (
        "hh-rlhf",
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: A pun.",
            "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: No.",
        },
        "Human: hi\n\nAssistant: hello\n\nHuman: joke?",
        ("A pun.", "No."),
        (True, False),
        "separate",
    ),
    (
        "hhh",
        {
            "chosen_instruction": "###The instruction to evaluate:\nQ\n\n###Response to evaluate:\nyes\n\n###Score Rubrics:\n...",
            "rejected_instruction": "###The instruction to evaluate:\nQ\n\n###Response to evaluate:\nno\n\n###Score Rubrics:\n...",
            "source": "harmless",
        },
        "Q",
        ("yes", "no"),
        (True, False),
        "separate",
    ),
    (
        "best-of-n",
        {"prompt": "Q", "responses": ["a", "b", "c"], "best": 1},
        "Q",
        ("a", "b", "c"),
        (False, True, False),
        "top",
    ),
    (
        "best-of-n",
        {
            "prompt": "Q",
            "responses": ["a", "b", "c"],
            "correct": [True, False, True],
            "reference": 4,
        },
        "Q",
        ("a", "b", "c"),
        (True, False, True),
        "top",
    ),
]


@pytest.mark.parametrize(("fmt", "row", "prompt", "responses", "good", "rule"), ROWS)
def test_each_format_detected_and_converted(
    tmp_path: Path, fmt, row, prompt, responses, good, rule
) -> None:  # type: ignore[no-untyped-def]
    assert detect_format(row) == fmt
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(row) + "\n")
    for given in ("auto", fmt):
        loaded = load_items([str(path)], given)
        (item,) = loaded.items
        assert (item.prompt, item.responses, item.good, item.rule) == (
            prompt,
            responses,
            good,
            rule,
        )
        assert item.id == "data:1"
    assert loaded.formats == {fmt: 1}


def test_rewardbench2_ties_rows_keep_their_group(tmp_path: Path) -> None:
    path = tmp_path / "rb2.jsonl"
    rows = [
        {"id": "ref:3", "prompt": "Q", "chosen": ["4"], "rejected": ["5", "6"], "subset": "Ties"},
        {
            "id": "tied:3",
            "prompt": "Q",
            "chosen": ["4", "four"],
            "rejected": ["5"],
            "subset": "Ties",
        },
        {"id": 7, "prompt": "Q", "chosen": ["x"], "rejected": ["y", "z", "w"], "subset": "Focus"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items([str(path)]).items
    assert [i.group for i in items] == ["ref:3", "tied:3", None]
    assert [i.subset for i in items] == ["Ties", "Ties", "Focus"]
    assert items[2].id == "7"


def test_gold_ties_and_bad_rows_are_counted_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"input": "Q", "output_1": "a", "output_2": "b", "label": "1"}),
        json.dumps({"input": "Q", "output_1": "a", "output_2": "b", "label": "0"}),  # gold tie
        json.dumps({"input": "Q", "output_1": "same", "output_2": "same", "label": "1"}),
        "{not json",
        json.dumps({"input": "Q", "output_1": 3, "output_2": "b", "label": "2"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_items([str(path)])
    assert len(loaded.items) == 1
    assert loaded.skipped_counts() == {"gold_tie": 1, "identical_responses": 1, "bad_row": 2}


def test_pandalm_majority_tie_and_split_votes(tmp_path: Path) -> None:
    base = {"instruction": "Do", "input": "", "response1": "r1", "response2": "r2"}
    rows = [
        {**base, "annotator1": "0", "annotator2": "0", "annotator3": "1"},  # majority tie
        {**base, "annotator1": "0", "annotator2": "2", "annotator3": "1"},  # no majority
        {**base, "annotator1": "1", "annotator2": "1", "annotator3": "1"},
    ]
    path = tmp_path / "pandalm.json"
    path.write_text(json.dumps(rows))  # a JSON array, as PandaLM ships it
    loaded = load_items([str(path)])
    assert [i.prompt for i in loaded.items] == ["Do"]
    assert loaded.skipped_counts() == {"gold_tie": 1, "no_majority": 1}


def test_gsm8k_pairs_gold_against_another_problems_solution(tmp_path: Path) -> None:
    rows = [
        {"question": "2+2?", "answer": "2 plus 2\n#### 4"},
        {"question": "3+3?", "answer": "3 plus 3\n#### 6"},
        {"question": "1+3?", "answer": "1 plus 3\n#### 4"},
    ]
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items([str(path)]).items
    assert [(i.reference, i.responses[1]) for i in items] == [
        ("4", "3 plus 3\n#### 6"),
        ("6", "1 plus 3\n#### 4"),
        ("4", "3 plus 3\n#### 6"),  # wraps around, skipping the same answer (4)
    ]


def test_sources_gz_parquet_datasets_folder_and_folder_of_files(tmp_path: Path) -> None:
    rows = [{"prompt": f"Q{i}", "chosen": "g", "rejected": "b"} for i in range(3)]
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    assert len(load_items([str(gz)]).items) == 3

    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    parquet = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert [i.prompt for i in load_items([str(parquet)]).items] == ["Q0", "Q1", "Q2"]

    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    assert len(load_items([str(folder)]).items) == 3

    files = tmp_path / "files"
    files.mkdir()
    (files / "llmbar_Natural.json").write_text(
        json.dumps([{"input": "Q", "output_1": "a", "output_2": "b", "label": "1"}])
    )
    (files / "mine.jsonl").write_text(
        json.dumps({"prompt": "Q", "chosen": "g", "rejected": "b"}) + "\n"
    )
    items = load_items([str(files)]).items
    # LLMBar files are named as RewardBench's subsets; other files by their stem.
    assert sorted(i.subset for i in items) == ["llmbar-natural", "mine"]


def test_hub_id_goes_through_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name: str, split: str) -> Any:
        calls.append((name, split))
        return datasets.Dataset.from_list(
            [{"prompt": "Q", "chosen": "g", "rejected": "b", "subset": "x"}]
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_items(["allenai/reward-bench:filtered"])
    assert calls == [("allenai/reward-bench", "filtered")]
    assert loaded.items[0].subset == "x"
    load_items(["owner/name"], split="validation")
    assert calls[-1] == ("owner/name", "validation")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"foo": 1}\n', "cannot tell the data format"),
        ('{"input": "Q", "output_1": "a", "output_2": "a", "label": "1"}\n', "no usable items"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_items([str(path)])
    with pytest.raises(InputError, match="input not found"):
        load_items([str(tmp_path / "missing.jsonl")])


def test_limit_and_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": "same", "prompt": f"Q{i}", "chosen": "g", "rejected": "b"}) + "\n"
            for i in range(3)
        )
    )
    assert len(load_items([str(path)], limit=1).items) == 1
    with pytest.raises(InputError, match="unique"):
        load_items([str(path)])


# -- the shared real data ---------------------------------------------------------------------


def _shared(*parts: str) -> str:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return str(path)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("parts", "fmt", "items", "skipped"),
    [
        (("judge-eval", "llmbar"), "pairs", 419, {}),
        (("judge-eval", "mtbench_human.json"), "pairs", 200, {}),
        (("judge-eval", "hhh_alignment.json"), "hhh", 221, {}),
        (("judge-eval", "pandalm_testset_v1.json"), "pandalm", None, None),
        (("hh-rlhf-harmless", "test.jsonl.gz"), "hh-rlhf", None, None),
        (("gsm8k", "test.jsonl"), "gsm8k", 1319, {}),
    ],
)
def test_shared_data_loads(parts, fmt, items, skipped) -> None:  # type: ignore[no-untyped-def]
    loaded = load_items([_shared(*parts)])
    assert set(loaded.formats) == {fmt}
    total = len(loaded.items) + len(loaded.skipped)
    assert total == sum(loaded.formats.values()), "every row is an item or a counted skip"
    if items is not None:
        assert len(loaded.items) == items
        assert loaded.skipped_counts() == skipped
    # An empty response is real data (and rightly loses); an empty prompt would be a bug.
    assert all(isinstance(i, EvalItem) and i.prompt.strip() for i in loaded.items)
    if fmt == "pandalm":  # the annotators' majority is often a tie: reported, not scored
        assert loaded.skipped_counts().get("gold_tie", 0) > 0
