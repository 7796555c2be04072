"""The blind test's score (twin/eval/blind.py): rate the twin was taken for the owner, with its interval."""

from __future__ import annotations

import json

import pytest

from twin.errors import TwinError
from twin.eval.blind import blind_score, blind_section
from twin.eval.intervals import wilson_interval


def _write(path, picks):
    rows = [{"run": "r", "prompt": i, "session": f"s-{i}", "adapter": "twin", "real": real, "pick": pick,
             "seconds": 2.0 + i, "at": "2026-01-01T00:00:00Z"} for i, (real, pick) in enumerate(picks)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_wilson_interval_matches_the_textbook_values():
    # 8 of 20: Wilson 95% interval 0.2188-0.6134 (z = 1.96).
    low, high = wilson_interval(8, 20)
    assert low == pytest.approx(0.2188, abs=1e-4) and high == pytest.approx(0.6134, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    # more rounds, narrower interval around the same rate
    assert wilson_interval(80, 200)[1] - wilson_interval(80, 200)[0] < high - low


def test_score_counts_twin_picks_and_halves_cant_tell(tmp_path):
    # real side A, picked B: the twin was taken for the owner.
    picks = [("A", "B"), ("B", "A"), ("A", "A"), ("B", "B"), ("A", "unsure"), ("B", "B")]
    s = blind_score(_write(tmp_path / "blind.jsonl", picks))
    assert (s["rounds"], s["twin_picked"], s["real_picked"], s["unsure"]) == (6, 2, 3, 1)
    assert s["rate"] == pytest.approx(2.5 / 6)
    assert (s["low"], s["high"]) == pytest.approx(wilson_interval(2.5, 6))
    assert s["low"] < s["rate"] < s["high"]
    assert s["median_seconds"] == pytest.approx(4.5)
    page = blind_section(s, "r")
    assert "42% of 6 rounds" in page and "50% = indistinguishable" in page


def test_all_cant_tell_is_indistinguishable(tmp_path):
    s = blind_score(_write(tmp_path / "blind.jsonl", [("A", "unsure"), ("B", "unsure")] * 5))
    assert s["rate"] == 0.5 and s["low"] < 0.5 < s["high"]


def test_no_file_means_no_test_yet(tmp_path):
    assert blind_score(tmp_path / "blind.jsonl") is None
    assert "Is it me?" in blind_section(None, "me") and "make eval RUN=me" in blind_section(None, "me")


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"real": "A", "pick": "B"', "not valid JSON"),
        ('{"real": "C", "pick": "A"}', "'real' in A/B"),
        ('{"real": "A", "pick": "maybe"}', "'pick' in A/B/unsure"),
    ],  # fmt: skip
)
def test_bad_line_names_file_and_line(tmp_path, line, problem):
    path = _write(tmp_path / "blind.jsonl", [("A", "A")])
    path.write_text(path.read_text() + line + "\n", encoding="utf-8")
    with pytest.raises(TwinError) as e:
        blind_score(path)
    assert f"{path}:2" in str(e.value) and problem in str(e.value)
