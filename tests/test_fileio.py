"""Atomic writes leave the old file or the new one; the JSONL reader names file, line and column."""

import pytest

from twin.errors import TwinError
from twin.fileio import (
    atomic_dir,
    atomic_open,
    atomic_write_jsonl,
    atomic_write_text,
    iter_jsonl,
    replace_path,
)


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out" / "train.jsonl"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["train.jsonl"]


def test_atomic_dir_swaps_in_whole_or_leaves_the_old_directory(tmp_path):
    out = tmp_path / "models" / "adapter"
    with atomic_dir(out) as tmp:
        (tmp / "a.bin").write_text("1")
        assert not out.exists()  # nothing visible until the block ends
    assert [p.name for p in out.iterdir()] == ["a.bin"]
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "b.bin").write_text("half")
        raise RuntimeError("killed mid-build")
    assert [p.name for p in out.iterdir()] == ["a.bin"]
    assert [p.name for p in out.parent.iterdir()] == ["adapter"]  # the half-built copy is gone
    with atomic_dir(out) as tmp:
        (tmp / "c.bin").write_text("2")
    assert [p.name for p in out.iterdir()] == ["c.bin"]
    assert [p.name for p in out.parent.iterdir()] == ["adapter"]


def test_jsonl_rows_are_compact_and_unicode(tmp_path):
    target = tmp_path / "x.jsonl"
    assert atomic_write_jsonl(target, [{"t": "привет 👋"}, {"t": 1}]) == 2
    assert target.read_text(encoding="utf-8") == '{"t":"привет 👋"}\n{"t":1}\n'


def test_replace_path_swaps_a_whole_directory_and_leaves_nothing_behind(tmp_path):
    out, tmp = tmp_path / "model", tmp_path / ".model.tmp"
    out.mkdir()
    (out / "old.bin").write_text("old")
    tmp.mkdir()
    (tmp / "new.bin").write_text("new")
    replace_path(tmp, out)
    assert [p.name for p in out.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    new_file = tmp_path / "state.tmp"
    new_file.write_text("2")
    replace_path(new_file, tmp_path / "state.ckpt")  # a file onto nothing, then onto a file
    (tmp_path / "again.tmp").write_text("3")
    replace_path(tmp_path / "again.tmp", tmp_path / "state.ckpt")
    assert (tmp_path / "state.ckpt").read_text() == "3"


def test_iter_jsonl_reads_every_line_and_names_a_bad_one(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"id": 1}\n\n{"x": NaN}\n[1]\n{"id": 2,\n', encoding="utf-8")
    rows = []
    with pytest.raises(TwinError, match=r"a\.jsonl:5: not valid JSON \(.* at column \d+\); re-run it$"):
        for lineno, obj in iter_jsonl(p, hint="re-run it"):
            rows.append((lineno, obj))
    # orjson refuses NaN; the stdlib still reads it, as before orjson
    assert rows[0] == (1, {"id": 1}) and rows[1][0] == 3 and rows[1][1]["x"] != rows[1][1]["x"]
    assert rows[2:] == [(4, [1])]
    with pytest.raises(TwinError, match="missing.jsonl: file not found$"):
        list(iter_jsonl(tmp_path / "missing.jsonl", hint="x"))
