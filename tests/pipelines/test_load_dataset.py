"""`pipelines._config.load_dataset`: the one dataset loader of `train sft` and `train grpo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import InputError
from rewardkit.pipelines._config import load_dataset

datasets = pytest.importorskip("datasets")


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_file_becomes_a_dataset_with_every_column(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "x": 1}, {"prompt": "b", "x": 2}])
    dataset = load_dataset(datasets, str(path), "train")
    assert dataset.column_names == ["prompt", "x"] and dataset["prompt"] == ["a", "b"]


def test_a_folder_gives_its_split_and_names_the_ones_it_has(tmp_path: Path) -> None:
    rows = datasets.Dataset.from_list([{"prompt": "a"}])
    datasets.DatasetDict({"train": rows, "test": rows}).save_to_disk(str(tmp_path / "dd"))
    assert load_dataset(datasets, str(tmp_path / "dd"), "test")["prompt"] == ["a"]
    with pytest.raises(InputError, match=r"has splits \['train', 'test'\], not 'dev'"):
        load_dataset(datasets, str(tmp_path / "dd"), "dev")


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.parquet"])
def test_a_local_path_that_is_not_there_is_not_taken_for_a_hub_id(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(InputError, match="dataset not found"):
        load_dataset(datasets, str(tmp_path / name), "train")


def test_rows_are_checked_as_written_naming_the_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"prompt": "a"}, {"text": "b"}])

    def check(record: dict[str, Any]) -> str | None:
        return None if "prompt" in record else "no prompt"

    with pytest.raises(InputError, match=r"d\.jsonl:2: no prompt$"):
        load_dataset(datasets, str(path), "train", check_record=check)


def test_an_unreadable_line_and_an_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2: invalid JSON"):
        load_dataset(datasets, str(bad), "train")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"empty\.jsonl: no rows"):
        load_dataset(datasets, str(empty), "train", require_rows=True)
    assert len(load_dataset(datasets, str(empty), "train")) == 0
