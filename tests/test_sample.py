"""The bundled sample export: reproducible, shaped like Telegram Desktop's, and fully scrubbed by prepare."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from twin.text.scrub import TYPES, Scrubber

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def export() -> dict:
    return json.loads((SAMPLE / "result.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def planted() -> list[dict]:
    return json.loads((SAMPLE / "planted_pii.json").read_text(encoding="utf-8"))


def flat(text) -> str:
    return text if isinstance(text, str) else "".join(p if isinstance(p, str) else p["text"] for p in text)


@pytest.mark.slow
def test_generator_reproduces_the_committed_files():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data, planted = mod.generate()
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    committed = (SAMPLE / "result.json").read_bytes()
    assert hashlib.sha256(text.encode()).hexdigest() == hashlib.sha256(committed).hexdigest()
    assert planted == json.loads((SAMPLE / "planted_pii.json").read_text(encoding="utf-8"))


def test_shape_and_size(export):
    assert (SAMPLE / "result.json").stat().st_size < 10_000_000
    assert {"personal_information", "chats"} <= export.keys()
    chats = export["chats"]["list"]
    types = Counter(c["type"] for c in chats)
    assert types["personal_chat"] >= 21 and types["bot_chat"] == 1 and types["saved_messages"] == 1
    assert types["private_group"] == 1
    assert "name" not in next(c for c in chats if c["type"] == "saved_messages")
    me = f"user{export['personal_information']['user_id']}"
    two_sided = [
        c
        for c in chats
        if c["type"] == "personal_chat"
        and {m.get("from_id") for m in c["messages"] if m["type"] == "message"} >= {me}
        and len({m.get("from_id") for m in c["messages"]}) >= 2
        and len(c["messages"]) > 200
    ]
    assert len(two_sided) >= 20
    msgs = [m for c in chats for m in c["messages"]]
    assert sum(m["type"] == "message" for m in msgs) >= 20_000
    dates = sorted(int(m["date_unixtime"]) for m in msgs)
    assert (dates[-1] - dates[0]) / 86400 >= 182
    for m in msgs:  # Desktop's shapes: local wall time without zone, unixtime as a string
        assert datetime.fromisoformat(m["date"]).tzinfo is None and m["date_unixtime"].isdigit()
        assert isinstance(m["text_entities"], list)
    feats = Counter()
    for m in msgs:
        feats["service"] += m["type"] == "service"
        feats["entity_list"] += isinstance(m["text"], list)
        feats["sticker"] += m.get("media_type") == "sticker" and "sticker_emoji" in m
        feats["photo_caption"] += "photo" in m and bool(m["text"])
        feats["forwarded"] += "forwarded_from" in m
        feats["edited"] += "edited_unixtime" in m
        feats["reply"] += "reply_to_message_id" in m
        feats["voice"] += m.get("media_type") == "voice_message"
        feats["deleted_from"] += m["type"] == "message" and m.get("from") is None
        feats["cyrillic"] += any("а" <= ch <= "я" for ch in flat(m["text"]))
    assert all(feats[k] >= 1 for k in feats), feats
    assert feats["cyrillic"] > 5000 and feats["cyrillic"] < 0.8 * len(msgs)  # both languages


def test_owner_has_a_recognisable_style(export):
    me = f"user{export['personal_information']['user_id']}"
    pets = ("ну такое", "короче", "давай", "sounds good", "no worries", "tbh", "haha")
    mine, theirs = Counter(), Counter()
    n_mine = n_theirs = 0
    for c in export["chats"]["list"]:
        if c["type"] != "personal_chat":
            continue
        for m in c["messages"]:
            if m["type"] != "message" or not m["text"]:
                continue
            t = flat(m["text"]).lower()
            bucket = mine if m["from_id"] == me else theirs
            if m["from_id"] == me:
                n_mine += 1
            else:
                n_theirs += 1
            bucket.update(p for p in pets if p in t)
    rate_mine = sum(mine.values()) / n_mine
    rate_theirs = sum(theirs.values()) / n_theirs
    assert rate_mine > 3 * rate_theirs, (rate_mine, rate_theirs)


def test_every_pii_type_is_planted_and_scrubbed_in_place(export, planted):
    # the sample was generated before the seed, address, passport, SSN, ID, birth date and coordinate
    # detectors (tests/data/pii covers those)
    assert {p["type"] for p in planted} == set(TYPES) - {
        "SEED",
        "ADDRESS",
        "PASSPORT",
        "SSN",
        "ID",
        "BIRTHDATE",
        "LOCATION",
    }
    by_id = {
        (c.get("name") or "Saved Messages", m["id"]): m
        for c in export["chats"]["list"]
        for m in c["messages"]
    }
    s = Scrubber("US,RU")
    for p in planted:
        m = by_id[(p["chat"], p["message_id"])]
        text = flat(m["text"])
        assert p["value"] in text
        assert p["value"] not in s.scrub(text), p["type"]


def _importer():
    from twin.sources.telegram_desktop import import_desktop

    return import_desktop


@pytest.mark.slow
def test_no_planted_value_survives_import_and_prepare(tmp_path, planted):
    import_desktop = _importer()
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import run_prepare

    import_desktop(str(SAMPLE / "result.json"), out_root=str(tmp_path / "raw"))
    stats = run_prepare(
        PrepareConfig(
            raw=str(tmp_path / "raw"), out=str(tmp_path / "processed"), format=["alpaca", "sharegpt"]
        )
    )
    assert stats["counts"]["examples"] > 3000 and stats["counts"]["val"] > 0
    assert (tmp_path / "processed" / "memory" / "pairs.jsonl").is_file()  # prepare builds the BM25 index
    blob = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (tmp_path / "processed").rglob("*")
        if p.is_file() and p.suffix != ".npy"  # the memory's BM25 arrays are numbers; its vocab is text
    )
    leaked = [p["type"] for p in planted if p["value"] in blob]
    assert leaked == []
    # the check has teeth: without scrubbing, planted values do reach the examples
    run_prepare(PrepareConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "unscrubbed"), scrub=False))
    raw_blob = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "unscrubbed").glob("*.jsonl"))
    assert sum(p["value"] in raw_blob for p in planted) >= 0.8 * len(planted)
