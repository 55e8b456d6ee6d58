"""Input rows (JSONL, Parquet, datasets folders) and the resumable result writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardkit.errors import ConfigError, InputError
from rewardkit.io import InputRow, RowKeys, iter_rows, load_json_line, row_id, sample_from_record
from rewardkit.store.results import ResultWriter


def test_jsonl_rows_with_line_numbers_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "response": "x"}\n'
        "\n"  # blank lines are skipped but still numbered
        '{"response": "y"\n'
        '"just a string"\n'
        '{"id": 5, "response": "z"}\n'
        "   \n"
        '{"response": "no trailing newline"}',
        encoding="utf-8",
    )
    rows = list(iter_rows(path))
    assert [r.line for r in rows] == [1, 3, 4, 5, 7]
    assert rows[0] == InputRow(1, {"id": "a", "response": "x"})
    assert (
        rows[1].record is None
        and rows[1].error is not None
        and rows[1].error.startswith("line 3: invalid JSON")
    )
    assert rows[2].error == "line 4: expected a JSON object, got str"
    assert [r.id for r in rows] == ["a", "3", "4", "5", "7"]
    assert rows[4].record == {"response": "no trailing newline"}


def test_invalid_utf8_does_not_stop_reading(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"response": "caf\xe9"}\n{"response": "ok"}\n')
    rows = list(iter_rows(path))
    assert len(rows) == 2 and rows[1].record == {"response": "ok"}
    assert rows[0].record is not None and rows[0].record["response"].startswith("caf")


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        list(iter_rows(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize(
    ("record", "line", "expected"),
    [
        ({"id": "x"}, 3, "x"),
        ({"id": 7}, 3, "7"),
        ({"id": None}, 3, "3"),
        ({}, 3, "3"),
        (None, 9, "9"),
    ],
)
def test_row_id(record: dict[str, Any] | None, line: int, expected: str) -> None:
    assert row_id(record, line) == expected


def test_sample_from_record_keeps_extra_fields() -> None:
    record = {
        "id": 4,
        "prompt": "p",
        "response": "r",
        "reference": {"tests": [{"input": "1", "output": "2"}]},
        "task": "code",
        "data_source": "mbpp",
    }
    sample = sample_from_record(record, 4)
    assert sample.id == "4"
    assert sample.reference == {"tests": [{"input": "1", "output": "2"}]}
    assert dict(sample.fields) == {"task": "code", "data_source": "mbpp"}


def test_chat_prompt_drops_system_turns_and_keeps_the_dialogue() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    sample = sample_from_record({"prompt": messages, "response": "r"}, 1)
    assert sample.prompt == "User: first\n\nAssistant: ok\n\nUser: second"
    assert sample_from_record({"prompt": messages[:2], "response": "r"}, 1).prompt == "first"
    assert sample_from_record({"response": "r"}, 1).prompt == ""


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "p"}, "line 2: missing field 'response'"),
        ({"response": None}, "line 2: missing field 'response'"),
        ({"response": 3}, "line 2: 'response' must be a string or chat messages, got int"),
        (
            {"prompt": 3, "response": "r"},
            "line 2: 'prompt' must be a string or chat messages, got int",
        ),
    ],
)
def test_sample_errors_name_the_line(record: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        sample_from_record(record, 2)
    assert str(info.value) == message


def test_parquet_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", None], "response": ["x", "y"], "level": [1, 2]}), path)
    rows = list(iter_rows(path))
    assert [(r.line, r.id, r.record) for r in rows] == [
        (1, "a", {"id": "a", "response": "x", "level": 1}),
        (2, "2", {"id": None, "response": "y", "level": 2}),
    ]


def test_dataset_folder_rows(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    data = {"prompt": ["p1", "p2"], "response": ["r1", "r2"]}
    datasets.Dataset.from_dict(data).save_to_disk(str(tmp_path / "one"))
    rows = list(iter_rows(tmp_path / "one"))
    assert [r.record for r in rows] == [
        {"prompt": "p1", "response": "r1"},
        {"prompt": "p2", "response": "r2"},
    ]
    datasets.DatasetDict({"only": datasets.Dataset.from_dict(data)}).save_to_disk(
        str(tmp_path / "dict1")
    )
    assert len(list(iter_rows(tmp_path / "dict1"))) == 2
    splits = {"train": datasets.Dataset.from_dict(data), "test": datasets.Dataset.from_dict(data)}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dict2"))
    with pytest.raises(InputError, match=r"holds splits .*point at one split's folder"):
        list(iter_rows(tmp_path / "dict2"))


def test_writer_appends_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"  # parent folders are created
    with ResultWriter(path) as writer:
        writer.write([{"id": "a", "reward": 1.0}, {"id": 2, "reward": None}])
        # Flushed at once: a reader sees the lines before close.
        assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", 2]
        assert writer.done == {"a", "2"}
    with ResultWriter(path) as again:
        assert again.done == {"a", "2"}
        again.write(
            [
                {
                    "id": "b",
                    "reward": 0.0,
                    "details": {"set": {1}, "path": Path("/x")},
                    "text": "naïve 中文",
                }
            ]
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    last = json.loads(lines[-1])
    assert last["details"] == {"set": "{1}", "path": "/x"}  # odd values degrade to text
    assert "中文" in lines[-1]  # written as UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("content", "kept_ids"),
    [
        ('{"id": "a"}\n{"id": "b"}\n{"id": "c", "rew', ["a", "b"]),  # a crash mid-line
        ('{"id": "a"}\n{"id": "b"}', ["a"]),  # even complete JSON without its newline
        ('{"id": "a', []),  # the only line is partial
        ('{"id": "a"}\n', ["a"]),
        ("", []),
    ],
)
def test_writer_trims_a_truncated_last_line_on_resume(
    tmp_path: Path, content: str, kept_ids: list[str]
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(content, encoding="utf-8")
    with ResultWriter(path) as writer:
        assert writer.done == set(kept_ids)
        writer.write([{"id": "new"}])
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == [*kept_ids, "new"]


def test_writer_ignores_junk_lines_when_resuming(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"no_id": 1}\n[1]\n{"id": 3}\n', encoding="utf-8")
    with ResultWriter(path) as writer:
        assert writer.done == {"a", "3"}


def _ids(path: Path) -> list[str]:
    return [str(json.loads(line)["id"]) for line in path.read_text(encoding="utf-8").splitlines()]


_MIXED = (
    '{"id": "a", "rewards": [7.0], "error": null}\n'
    '{"id": "b", "rewards": [null], "error": "backend_error: cannot reach"}\n'
    '{"id": "c", "rewards": [3.0]}\n'  # no error field at all: done
    "not json\n"
    '{"id": 4, "error": "no_valid_judgment"}\n'
)


@pytest.mark.parametrize(
    ("retry_errors", "done", "lines_after_open"),
    [
        (False, {"a", "b", "c", "4"}, ["a", "b", "c", "not json", "4"]),
        (True, {"a", "c"}, ["a", "c", "not json"]),
    ],
)
def test_writer_retry_errors_drops_error_lines(
    tmp_path: Path, retry_errors: bool, done: set[str], lines_after_open: list[str]
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(_MIXED, encoding="utf-8")
    with ResultWriter(path, retry_errors=retry_errors) as writer:
        assert writer.done == done
        assert writer.dropped == (2 if retry_errors else 0)
        kept = [
            str(json.loads(x)["id"]) if x.startswith("{") else x
            for x in path.read_text(encoding="utf-8").splitlines()
        ]
        assert kept == lines_after_open
        # The rerun writes the retried ids: each id appears once in the end.
        writer.write([{"id": rid, "error": None} for rid in ("b", "4") if rid not in writer.done])
    ids = [i for i in (_ids_or_none(x) for x in path.read_text().splitlines()) if i is not None]
    assert sorted(ids) == ["4", "a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left


def _ids_or_none(line: str) -> str | None:
    try:
        return str(json.loads(line)["id"])
    except ValueError:
        return None


def test_writer_retry_errors_leaves_a_clean_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "error": null}\n{"id": "b", "rew', encoding="utf-8")
    inode = path.stat().st_ino
    with ResultWriter(path, retry_errors=True) as writer:
        assert writer.done == {"a"} and writer.dropped == 0
    assert path.stat().st_ino == inode  # not rewritten
    assert _ids(path) == ["a"]  # but the crash's half line is trimmed as always


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (float("nan"), None),  # NaN is not JSON; written as null
        (0.25, 0.25),
        (10**30, 10**30),  # beyond 64 bits: still a number
        ("\ud800", "\ud800"),  # a lone surrogate survives (escaped)
    ],
)
def test_writer_odd_values_stay_readable(tmp_path: Path, value: Any, written: Any) -> None:
    path = tmp_path / "out.jsonl"
    with ResultWriter(path) as writer:
        writer.write([{"id": "x", "value": value}])
    with ResultWriter(path) as again:
        assert again.done == {"x"}
    assert json.loads(path.read_bytes())["value"] == written


def test_writer_writes_numpy_floats_as_numbers(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "out.jsonl"
    with ResultWriter(path) as writer:
        writer.write([{"id": "x", "reward": np.float64(0.5), "n": np.int64(3)}])
    assert json.loads(path.read_text())["reward"] == 0.5


def test_jsonl_rows_same_with_crlf_and_bare_cr(tmp_path: Path) -> None:
    rows = ['{"id": "a"}', "", '{"id": "b"}', "[1]", "{bad"]
    expected = None
    for newline in ("\n", "\r\n", "\r"):
        path = tmp_path / "in.jsonl"
        path.write_bytes(newline.join(rows).encode() + newline.encode())
        got = [(r.line, r.record, r.error) for r in iter_rows(path)]
        expected = expected or got
        assert got == expected
    assert expected is not None and [line for line, _, _ in expected] == [1, 3, 4, 5]


# Integers past 64 bits: orjson reads them as floats, so 2**64 and 2**64 + 1 would be one id.
BIG_IDS = [2**64, 2**64 + 1, 123456789012345678901234567890, -(2**63) - 1, 10**19]


def test_ids_past_64_bits_stay_exact(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "response": "x", "n": i}) for i in BIG_IDS]
    lines.append(
        json.dumps({"id": "12345678901234567890123", "response": "a string id, same digits"})
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(iter_rows(path))
    assert [r.id for r in rows] == [str(i) for i in BIG_IDS] + ["12345678901234567890123"]
    assert [r.record["n"] for r in rows[:-1] if r.record] == BIG_IDS  # other fields too
    assert len({r.id for r in rows}) == len(rows)


@pytest.mark.parametrize(
    "value",
    [
        2**64 - 1,  # 20 digits, still u64: orjson keeps it
        2**64,
        -(2**63),  # "-" and 19 digits, still i64
        -(2**63) - 1,
        2**63 - 1,  # 19 digits: a false alarm, read by the stdlib, still exact
        -(10**18),  # "-" and 19 digits... of which 1 and 18 zeros: exact either way
        10**40,
        -(10**40),
    ],
)
def test_integers_at_the_64_bit_edges_stay_exact(tmp_path: Path, value: int) -> None:
    path = tmp_path / "in.jsonl"
    line = json.dumps({"id": value, "response": "x", "nested": {"n": [value]}})
    path.write_text(line + "\n", encoding="utf-8")
    (row,) = iter_rows(path)
    assert row.id == str(value)
    assert row.record is not None and row.record["nested"]["n"] == [value]
    assert load_json_line(line.encode()) == {"id": value, "response": "x", "nested": {"n": [value]}}


def test_writer_resumes_big_integer_ids_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps({"id": i, "reward": 1.0}) + "\n" for i in BIG_IDS[:2]))
    with ResultWriter(out) as writer:
        assert writer.done == {str(BIG_IDS[0]), str(BIG_IDS[1])}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("{tmp}", "is a directory"),
        ("{tmp}/a_file/out.jsonl", "which is a file, not a directory"),
        ("{tmp}/a_file/deeper/out.jsonl", "which is a file, not a directory"),
        ("/proc/rewardkit-test/out.jsonl", "cannot write"),  # a real OS error, even as root
    ],
)
def test_writer_unusable_path_is_a_config_error(tmp_path: Path, where: str, message: str) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match=message):
        ResultWriter(where.format(tmp=tmp_path))


def test_row_keys_count_every_row_read_for_a_progress_total(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    # blank lines are not rows; an unreadable line is one; no final newline
    path.write_text('{"a": 1}\n\n   \n{oops\n{"id": 2}\n{"a": 3}')
    assert RowKeys.of(path).rows == 4
    assert RowKeys(set()).rows is None  # built by hand: the total is unknown


def test_row_keys_count_the_rows_of_parquet_too(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"]}), path)
    keys = RowKeys.of(path)
    assert keys.rows == 3 and keys.given == {"a", "b", "c"}


def test_usable_cpus_follows_the_affinity_mask() -> None:
    import os

    from rewardkit._cpus import usable_cpus

    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() == len(os.sched_getaffinity(0))


# -- row keys: made-up keys never equal a real id ------------------------------------------

_NO_ID: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("records", "keys"),
    [
        ([{"id": "a"}, _NO_ID, {"id": 7}], ["a", "2", "7"]),  # no clash: the line number
        ([_NO_ID, {"id": 1}], ["@line1", "1"]),  # a later row owns "1"
        ([{"id": 3}, _NO_ID, _NO_ID], ["3", "2", "@line3"]),  # an earlier one owns "3"
        ([{"id": "1"}, {"id": "@line1"}, _NO_ID], ["1", "@line1", "3"]),
        ([_NO_ID, {"id": 1}, {"id": "@line1"}], ["@line1~", "1", "@line1"]),
        ([{"id": "q"}, {"id": "q"}, {"id": "q@line2"}], ["q", "q@line2~", "q@line2"]),
        ([None, {"id": 1}], ["@line1", "1"]),  # an unreadable line is keyed like an id-less one
    ],
)
def test_row_keys_are_unique_and_never_take_an_input_id(
    tmp_path: Path, records: list[dict[str, Any] | None], keys: list[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(("{oops" if r is None else json.dumps(r)) + "\n" for r in records))
    row_keys = RowKeys.of(path)
    got = [row_keys.assign(row)[0] for row in iter_rows(path)]
    assert got == keys
    real = {str(r["id"]) for r in records if r and "id" in r}
    made_up = [k for k, r in zip(got, records, strict=True) if not (r and "id" in r)]
    assert not real & set(made_up) and len(set(got)) == len(got)
