"""bench/bench_import.py starts and reports (smallest size; the figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.slow  # runs the benchmark as a subprocess


def test_bench_import_quick(tmp_path: Path) -> None:
    out = tmp_path / "import.json"
    results_before = (REPO / "bench" / "RESULTS.md").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_import", "--quick", "--out", str(out), "--cache", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "messages/s" in proc.stdout and "| phase: convert |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["messages"] == 20_000 and report["dialog_files"] >= 5
    # personal chats hold ~80% of the generated messages, minus service and empty ones
    assert 0.7 * 20_000 < report["records_written"] < 0.8 * 20_000
    assert report["wall_s"] > 0 and report["max_rss_mb"] > 10 and report["reimport"]["wall_s"] > 0
    assert {"read", "parse", "convert", "merge", "write"} == set(report["profile"]["phases"])
    assert report["profile"]["messages"] == report["records_written"]
    assert (REPO / "bench" / "RESULTS.md").read_bytes() == results_before  # --quick writes no row


def test_generated_export_is_deterministic_and_desktop_shaped(tmp_path: Path) -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.gen_export import generate_export

    a = generate_export(tmp_path / "a.json", 3000, 7).read_bytes()
    assert a == generate_export(tmp_path / "b.json", 3000, 7).read_bytes()
    assert a != generate_export(tmp_path / "c.json", 3000, 8).read_bytes()
    assert a.startswith(b'{\n "about": ') and b'\n   {\n    "name": ' in a  # Desktop's 1-space indent
    data = json.loads(a)
    chats = data["chats"]["list"] + data["left_chats"]["list"]
    msgs = [m for c in chats for m in c["messages"]]
    assert len(msgs) == 3000 and data["personal_information"]["user_id"] == 100000001
    assert {"personal_chat", "bot_chat", "saved_messages", "public_channel"} <= {c["type"] for c in chats}
    kinds = {
        "service": sum(m["type"] == "service" for m in msgs),
        "entity lists": sum(isinstance(m.get("text"), list) for m in msgs),
        "stickers": sum(m.get("media_type") == "sticker" for m in msgs),
        "photos": sum("photo" in m for m in msgs),
        "replies": sum("reply_to_message_id" in m for m in msgs),
        "deleted sender": sum(m["type"] == "message" and m["from"] is None for m in msgs),
    }
    assert all(v > 0 for v in kinds.values()), kinds
    assert all(m["date_unixtime"].isdigit() and isinstance(m["text_entities"], list) for m in msgs)
