"""bench/pii_speed.py times the scrubber on generated chat lines and the ordinary corpus (figures: RESULTS.md)."""

from __future__ import annotations

import pytest

from bench import pii_speed
from bench.bench_prepare import generate_raw


def test_pii_speed_reports_both_sets(tmp_path, capsys):
    raw = generate_raw(tmp_path / "raw", 3000)
    out = pii_speed.main(["--raw", str(raw), "--messages", "1000", "--copies", "1", "--reps", "1"])
    assert 500 < out["chat_texts"] <= 3000 and out["chat_us_per_text"] > 0
    assert out["chat_us_per_text_in_dialogs"] > 0
    assert out["ordinary_lines"] >= 800 and out["ordinary_us_per_line"] > 0
    assert '"chat_us_per_text"' in capsys.readouterr().out


def test_pii_speed_names_a_missing_raw_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        pii_speed.main(["--raw", str(tmp_path / "nope")])
    assert e.value.code == 2 and "--raw" in capsys.readouterr().err
