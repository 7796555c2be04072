"""Atomic writes: a failure mid-write leaves the old file intact and no temp file behind."""

import pytest

from twin.fileio import atomic_open, atomic_write_jsonl, atomic_write_text


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out" / "train.jsonl"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["train.jsonl"]


def test_jsonl_rows_are_compact_and_unicode(tmp_path):
    target = tmp_path / "x.jsonl"
    assert atomic_write_jsonl(target, [{"t": "привет 👋"}, {"t": 1}]) == 2
    assert target.read_text(encoding="utf-8") == '{"t":"привет 👋"}\n{"t":1}\n'
