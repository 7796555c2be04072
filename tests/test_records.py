"""The raw record format: canonical field order, validation errors naming file:line, merge/dedupe."""

import json

import pytest

from twin.errors import TwinError
from twin.records import (
    FIELDS,
    dialog_files,
    dumps_record,
    iso_utc,
    make_record,
    merge_records,
    parse_iso_utc,
    read_dialog,
    write_dialog,
)


def rec(i, date, out=False, text="hi"):
    return make_record(source="telegram", dialog_id=7, dialog_name="Bob", id=i, date=date, out=out, text=text)


def test_dumps_record_uses_canonical_field_order_whatever_the_input_order():
    a = rec(1, "2024-03-01T09:00:00Z")
    b = dict(reversed(list(a.items())))
    assert dumps_record(a) == dumps_record(b)
    assert list(json.loads(dumps_record(b))) == list(FIELDS)


def test_iso_utc_from_unix_time_and_aware_datetime():
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(parse_iso_utc("2024-03-01T12:00:00+03:00")) == "2024-03-01T09:00:00Z"
    with pytest.raises(ValueError):
        parse_iso_utc("2024-03-01T12:00:00")


def test_write_dialog_sorts_and_rewrites_byte_identically(tmp_path):
    p = tmp_path / "telegram" / "7.jsonl"
    rows = [rec(3, "2024-03-02T00:00:00Z"), rec(1, "2024-03-01T00:00:00Z"), rec(2, "2024-03-01T00:00:00Z")]
    assert write_dialog(p, rows) == 3
    first = p.read_bytes()
    write_dialog(p, list(reversed(rows)))
    assert p.read_bytes() == first
    assert [r["id"] for r in read_dialog(p)] == [1, 2, 3]
    assert not [x for x in p.parent.iterdir() if x.name.startswith(".")], "no temp file left behind"


def test_merge_records_dedupes_by_id_and_newer_copy_wins():
    old = [rec(1, "2024-03-01T00:00:00Z", text="draft"), rec(2, "2024-03-01T00:01:00Z")]
    new = [rec(1, "2024-03-01T00:00:00Z", text="edited"), rec(3, "2024-03-01T00:02:00Z")]
    merged = merge_records(old, new)
    assert [r["id"] for r in merged] == [1, 2, 3]
    assert merged[0]["text"] == "edited"


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"dialog_id": 7, "id": 1, "out": false}', "missing 'date'"),
        ('{"dialog_id": 7, "id": 1, "date": "2024-03-01T00:00:00Z"}', "missing 'out'"),
        ('{"dialog_id": 7, "id": 1, "date": "yesterday", "out": false}', "'date'"),
        ('{"dialog_id": 7, "id": 1, "date": "2024-03-01T00:00:00Z", "out": "yes"}', "'out'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_raw_lines_name_file_and_line(tmp_path, line, needle):
    p = tmp_path / "7.jsonl"
    good = dumps_record(rec(1, "2024-03-01T00:00:00Z"))
    p.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(TwinError) as e:
        read_dialog(p)
    assert f"{p}:3" in str(e.value)
    assert needle in str(e.value)


def test_dialog_files_errors_on_missing_root_and_skips_temp_files(tmp_path):
    with pytest.raises(TwinError, match="not found"):
        dialog_files(tmp_path / "nope")
    (tmp_path / "telegram").mkdir()
    (tmp_path / "telegram" / "1.jsonl").write_text("")
    (tmp_path / "telegram" / ".1.jsonl.abc.tmp").write_text("")
    assert [p.name for p in dialog_files(tmp_path)] == ["1.jsonl"]
