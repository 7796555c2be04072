"""Memory of past exchanges: BM25 retrieval (real bm25s), same contact first, never the own session."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.adapter_meta import meta_with

from twin.errors import TwinError
from twin.memory import MEMORY_DIR, Memory, adapter_memory, build_memory, ensure_memory

TRAIN = [
    {"session": "a-1", "contact": "Alice", "instruction": "dinner tonight?", "response": "sure, 8?"},
    {"session": "a-2", "contact": "Alice", "instruction": "dinner on friday?", "response": "friday works"},
    {
        "session": "b-1",
        "contact": "Bob",
        "instruction": "dinner tonight with us?",
        "response": "can't, sorry",
    },
    {"session": "b-1", "contact": "Bob", "instruction": "dinner tonight?", "response": "can't, sorry"},
    {"session": "b-2", "contact": "Bob", "instruction": "did you see the game?", "response": "no, spoilers!"},
    {"session": "m-1", "contact": "Мама", "instruction": "ты поел?", "response": "да, мам)"},
]


def _write(dir_, rows):
    dir_.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"dialog_id": 1, "context": [], **r}, ensure_ascii=False) for r in rows]
    (dir_ / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dir_


@pytest.fixture()
def memory(tmp_path):
    return Memory.open(build_memory(_write(tmp_path / "data", TRAIN)))


def test_attaching_memory_to_many_examples_shows_a_bar(memory, monkeypatch):
    """`twin train --memory 3` spent 14.6 s recalling for a 90,000-message account's 13,855 train
    examples with no line; a bar now counts them (a few, as eval's 200, get none)."""
    import tqdm.auto

    from twin import memory as memory_mod

    shown: list[tuple[str, int, bool]] = []

    def bar(items, *, desc, disable, **_):
        shown.append((desc, len(items), disable))
        return iter(items)

    monkeypatch.setattr(tqdm.auto, "tqdm", bar)
    monkeypatch.setattr(memory_mod, "ATTACH_BAR_FROM", 4)
    rows = [{"session": "x", "contact": "Bob", "instruction": "dinner?", "response": "ok"}] * 5
    assert len(memory.attach(rows, 2)) == 5 and len(memory.attach(rows[:3], 2)) == 3
    assert shown == [("memory: 2 past exchanges per example", 5, None),
                     ("memory: 2 past exchanges per example", 3, True)]  # fmt: skip


def test_by_default_only_the_same_contacts_exchanges(memory):
    # One person's chats never reach a prompt written for another (issue 19, section 3).
    assert memory.scope == "contact"
    got = memory.retrieve("dinner tonight?", 3, contact="Alice")
    assert [m["contact"] for m in got] == ["Alice", "Alice"]
    assert got[0] == {"contact": "Alice", "them": "dinner tonight?", "me": "sure, 8?"}  # best match first
    bob = memory.retrieve("dinner tonight?", 3, contact="Bob")
    assert [m["contact"] for m in bob] == ["Bob", "Bob"]
    # a new contact, or a request naming none, sees nobody's exchanges
    assert memory.retrieve("dinner tonight?", 3, contact="Katya") == []
    assert memory.retrieve("dinner tonight?", 3) == []
    assert memory.retrieve("ты поел?", 1, contact="Мама") == [
        {"contact": "Мама", "them": "ты поел?", "me": "да, мам)"}
    ]


def test_scope_all_is_same_contact_first_then_the_rest_by_score(memory):
    memory.scope = "all"
    got = memory.retrieve("dinner tonight?", 3, contact="Alice")
    assert [m["contact"] for m in got] == ["Alice", "Alice", "Bob"]
    assert got[2]["me"] == "can't, sorry"
    # another contact: their exchanges come first, the identical exchange only once
    bob = memory.retrieve("dinner tonight?", 3, contact="Bob")
    assert [m["contact"] for m in bob] == ["Bob", "Bob", "Alice"]
    assert bob[0]["them"] == "dinner tonight?" and bob[1]["them"] == "dinner tonight with us?"
    assert [m["contact"] for m in memory.retrieve("dinner tonight?", 3, contact="Katya")] == [
        "Alice",
        "Bob",
        "Bob",
    ]


def test_never_the_examples_own_session_and_nothing_without_a_shared_word(memory):
    memory.scope = "all"
    got = memory.retrieve("dinner tonight?", 5, contact="Bob", session="b-1")
    assert got and all(m["me"] != "can't, sorry" for m in got)
    assert memory.retrieve("completely unrelated words", 3, contact="Alice") == []
    assert memory.retrieve("dinner", 0) == []
    attached = memory.attach([{**TRAIN[0], "context": []}], 2)
    assert attached[0]["memory"] and all(
        m["them"] != "dinner tonight?" or m["contact"] != "Alice" for m in attached[0]["memory"]
    )
    assert "memory" not in TRAIN[0]  # the examples themselves are left alone


def test_index_is_rebuilt_when_the_train_split_changes(tmp_path):
    data = _write(tmp_path / "data", TRAIN[:2])
    first = ensure_memory(data)
    stamp = (first / "memory.json").stat().st_mtime_ns
    assert ensure_memory(data) == first and (first / "memory.json").stat().st_mtime_ns == stamp
    _write(data, TRAIN)
    assert len(Memory.open(ensure_memory(data)).pairs) == len(TRAIN)
    # an index whose words were cut the old way (no "tokens": re's \w) is rebuilt too
    meta = json.loads((first / "memory.json").read_text(encoding="utf-8"))
    (first / "memory.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "tokens"}))
    ensure_memory(data)
    assert json.loads((first / "memory.json").read_text(encoding="utf-8"))["tokens"] == "words-v2"
    with pytest.raises(TwinError, match="not found"):
        build_memory(tmp_path / "nowhere")


def test_adapter_memory_follows_twin_json_and_refuses_memory_it_was_not_trained_with(tmp_path):
    data = _write(tmp_path / "data", TRAIN)
    build_memory(data)
    adapter = tmp_path / "adapter"
    shutil.copytree(data / MEMORY_DIR, adapter / MEMORY_DIR)
    mem = adapter_memory(adapter, meta_with(memory={"k": 2, "dir": MEMORY_DIR}))
    assert mem.k == 2 and len(mem.pairs) == len(TRAIN)
    assert mem.scope == "contact"  # adapters from before the scope was recorded: the private default
    assert (
        adapter_memory(adapter, meta_with(memory={"k": 2, "dir": MEMORY_DIR, "scope": "all"})).scope == "all"
    )
    with pytest.raises(TwinError, match=r"field 'memory.scope'.*'everyone'"):  # refused on reading twin.json
        meta_with(memory={"k": 2, "dir": MEMORY_DIR, "scope": "everyone"})
    assert adapter_memory(adapter, meta_with(memory={"k": 2, "dir": MEMORY_DIR}), 5).k == 5
    assert adapter_memory(adapter, meta_with()) is None and adapter_memory(adapter, meta_with(), 0) is None
    with pytest.raises(TwinError, match="trained without memory"):
        adapter_memory(adapter, meta_with(), 3)
    shutil.rmtree(adapter / MEMORY_DIR)
    with pytest.raises(TwinError, match="memory missing"):
        adapter_memory(adapter, meta_with(memory={"k": 2, "dir": MEMORY_DIR}))


def test_a_sinhala_word_is_one_token(tmp_path):
    """A query word matches the remembered one whole: re's \\w split "හෙට" into "හ" + "ට", so any
    word sharing a consonant matched."""
    from twin.memory import tokens

    assert tokens("මම හෙට එන්නම්") == ["මම", "හෙට", "එන්නම්"]
    rows = [
        {"session": "s-1", "contact": "Nimal", "instruction": "හෙට එනවද?", "response": "ඔව්, එන්නම්"},
        {"session": "s-2", "contact": "Nimal", "instruction": "හිත හොඳද?", "response": "හරි"},
    ]
    mem = Memory.open(build_memory(_write(tmp_path / "data", rows)))
    got = mem.retrieve("හෙට හමුවෙමුද?", 5, contact="Nimal", session="s-9")
    assert [g["me"] for g in got] == ["ඔව්, එන්නම්"]


def test_the_same_chat_is_the_same_dialog_not_the_same_name(tmp_path):
    # two people saved under one name (or two "Deleted Account"s) and a group called like a person
    rows = [
        {"dialog_id": 1, "session": "1-0", "contact": "Anna", "instruction": "lunch at noon?", "response": "yes!"},
        {"dialog_id": 2, "session": "2-0", "contact": "Anna", "instruction": "lunch at noon?", "response": "no."},
        {"dialog_id": 3, "session": "3-0", "contact": "Anna", "group": True, "instruction": "Tom: lunch at noon?",
         "response": "who's in?"},
    ]  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"context": [], **r}) + "\n" for r in rows))
    memory = Memory.open(build_memory(data))
    assert [m["me"] for m in memory.retrieve("lunch at noon?", 3, contact="Anna", chat=1)] == ["yes!"]
    assert [m["me"] for m in memory.retrieve("lunch at noon?", 3, contact="Anna", chat=2)] == ["no."]
    # training and eval attach by dialog id: an example never sees the other Anna's reply
    attached = memory.attach([{**rows[0], "session": "1-9"}], 3)[0]["memory"]
    assert [m["me"] for m in attached] == ["yes!"]
    # a caller knowing only the name (the server's `contact`) never mixes a group with the person
    group = memory.retrieve("lunch at noon?", 3, contact="Anna", group=True)
    assert [m["me"] for m in group] == ["who's in?"]
    assert "who's in?" not in [m["me"] for m in memory.retrieve("lunch at noon?", 3, contact="Anna")]


def test_an_index_without_dialog_ids_is_rebuilt(tmp_path):
    data = _write(tmp_path / "data", TRAIN)
    out = ensure_memory(data)
    meta = json.loads((out / "memory.json").read_text(encoding="utf-8"))
    (out / "memory.json").write_text(json.dumps({**meta, "format": 1}))
    ensure_memory(data)
    assert json.loads((out / "memory.json").read_text(encoding="utf-8"))["format"] == 2
    assert all(p["chat"] == 1 for p in Memory.open(out).pairs)
