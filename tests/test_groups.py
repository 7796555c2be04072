"""Group chats through export, prepare and the prompt: who said what reaches the prompt, the reply
stays only the owner's text, and train and serve render a group's prompt alike."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.raw_chats import write_chat

from twin.prepare.config import PrepareConfig
from twin.prepare.pipeline import process_dialog
from twin.prompt import PLAIN, build_prompt, build_training_pair, group_turn_text
from twin.records import read_dialog, write_dialog
from twin.sources.telegram_desktop import import_desktop

T0 = 1_700_000_000


def _msg(mid: int, from_id: str, name: str | None, text: str) -> dict:
    return {"id": mid, "type": "message", "date": "2023-11-14T22:13:20", "date_unixtime": str(T0 + mid),
            "from": name, "from_id": from_id, "text": text}  # fmt: skip


def _export(tmp_path: Path) -> Path:
    group = {"id": 55, "name": "Climbing", "type": "private_supergroup", "messages": [
        _msg(1, "user2", "Anna Petrova", "who's in for saturday?"),
        _msg(2, "user3", "Tom", "me"),
        _msg(3, "user3", "Tom", "9 am?"),
        _msg(4, "user1", "Me Self", "count me in"),
        _msg(5, "user4", None, "same"),  # a deleted account writes without a name
    ]}  # fmt: skip
    personal = {"id": 2, "name": "Anna Petrova", "type": "personal_chat", "messages": [
        _msg(10, "user2", "Anna Petrova", "hi"), _msg(11, "user1", "Me Self", "hey"),
    ]}  # fmt: skip
    data = {"personal_information": {"user_id": 1, "first_name": "Me", "last_name": "Self"},
            "chats": {"list": [group, personal]}}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_desktop_export_names_who_wrote_each_group_message_but_not_mine(tmp_path):
    import_desktop(_export(tmp_path), tmp_path / "raw", include_groups=True)
    group = read_dialog(tmp_path / "raw" / "telegram" / "55.jsonl")
    assert [(r["out"], r.get("sender")) for r in group] == [
        (False, "Anna Petrova"), (False, "Tom"), (False, "Tom"), (True, None), (False, "Deleted Account"),
    ]  # fmt: skip
    personal = read_dialog(tmp_path / "raw" / "telegram" / "2.jsonl")
    assert all("sender" not in r for r in personal)  # one other person: the dialog's name says who


def _group_raw(tmp_path: Path, sender_of_first: str = "Anna") -> Path:
    rows = [
        (1, False, sender_of_first, "who's in for saturday?"),
        (2, False, "Tom", "me"),
        (3, False, "Tom", "9 am?"),
        (4, True, None, "count me in"),
        (5, False, "Anna", "great"),
        (6, True, None, "see you"),
    ]
    return write_chat(tmp_path / "55.jsonl", 55, "Climbing", [(out, text, who) for _, out, who, text in rows])


def _examples(path: Path) -> list[dict]:
    res = process_dialog(path, PrepareConfig(val_fraction=0.0), len)
    return [json.loads(line) for line in res["text"]["main"]["train"].splitlines()]


def test_prepare_says_who_said_what_and_the_reply_is_only_mine(tmp_path):
    first, second = _examples(_group_raw(tmp_path))
    assert first["group"] is True and first["contact"] == "Climbing"
    assert first["members"] == ["Anna", "Tom"] and second["members"] == ["Anna", "Tom"]  # as labelled
    # several people answered at once: one turn, labelled wherever the speaker changes
    assert first["instruction"] == "Anna: who's in for saturday?\nTom: me\n9 am?"
    assert first["response"] == "count me in"  # no label in what the twin learns to write
    assert second["context"] == [
        {"role": "them", "text": "Anna: who's in for saturday?\nTom: me\n9 am?"},
        {"role": "me", "text": "count me in"},
    ]
    assert second["instruction"] == "Anna: great" and second["response"] == "see you"


def test_the_style_verifier_learns_what_members_wrote_not_their_names(tmp_path):
    from twin.style import split_messages

    owner, contacts = split_messages(_examples(_group_raw(tmp_path)))
    assert owner == ["count me in", "see you"]
    assert contacts == ["who's in for saturday?\nme\n9 am?", "great"]


def test_a_members_name_is_scrubbed_like_the_contacts(tmp_path):
    (first, _) = _examples(_group_raw(tmp_path, sender_of_first="Anna +1 415 555 0134"))
    assert first["instruction"].startswith("Anna [PHONE]: who's in for saturday?\n")


def test_a_personal_chats_examples_are_unchanged(tmp_path):
    path = _group_raw(tmp_path)
    recs = [{k: v for k, v in r.items() if k != "sender"} for r in read_dialog(path)]
    write_dialog(path, recs)
    first, _ = _examples(path)
    assert "group" not in first and first["instruction"] == "who's in for saturday?\nme\n9 am?"


def test_group_prompt_names_the_group_and_labels_each_person_once(tmp_path):
    _, second = _examples(_group_raw(tmp_path))
    prompt, completion = build_training_pair(second, template=PLAIN)
    assert prompt == (
        "You are chatting in the group Climbing. Write your reply to their messages the way you usually write.\n\n"
        "### Your previous communication:\n"
        "Anna: who's in for saturday?\nTom: me\n9 am?\nMe: count me in\n\n"
        "### Their new messages:\nAnna: great\n\n"
        "### Your response:\n"
    )  # not "Climbing: Anna: ...": the group is not a person
    assert completion == "see you"


def test_group_turn_text_labels_on_change_and_names_the_nameless():
    assert group_turn_text([("Tom", "a"), ("Tom", "b"), (None, "c"), ("Ann\nLee", "d")]) == (
        "Tom: a\nb\nSomeone: c\nAnn Lee: d"
    )
    # a personal chat's prompt is as before
    assert build_prompt([], "hi", contact="Bob").startswith(
        "You are chatting with Bob. Write your reply to their message "
    )


def test_a_members_label_stops_the_reply_whatever_its_case():
    from twin.inference.stops import speaker_stops, visible_text

    stops = speaker_stops("Climbing", members=["jake_99", None])
    assert "\njake_99:" in stops and "\nSomeone:" in stops
    # a lower-case name is no label to the guard: only the member stop keeps his words out of my reply
    assert visible_text("sure\njake_99: me too", stops, final=True) == ("sure", True)


GROUP_HISTORY = [
    {"role": "them", "name": "Anna", "text": "who's in for saturday?"},
    {"role": "them", "name": "Tom", "text": "me"},
    {"role": "them", "name": "Tom", "text": "9 am?"},
    {"role": "me", "text": "count me in"},
]


def _trained_group_reply(engine, tmp_path):
    """The group's prompt as prepare + train made it, and the twin's greedy reply to it (10 tokens)."""
    from twin.inference.generate import GenParams, generate, speaker_stops

    _, trained = _examples(_group_raw(tmp_path))  # the same messages, through prepare
    prompt, _ = build_training_pair(trained, template=engine.adapters["twin"].meta.template)
    engine.model.set_adapter("twin")
    with engine.lock:
        want = generate(engine.model, engine.tokenizer, prompt, GenParams(
            max_new_tokens=10, temperature=0, extra_stops=speaker_stops("Climbing", members=["Anna", "Tom"])))  # fmt: skip
    return prompt, want


def test_reply_to_a_group_renders_the_prompt_the_twin_was_trained_on(engine, tmp_path):
    """A group's messages sent to /reply become the prompt prepare + train made of the same messages."""
    from fastapi.testclient import TestClient

    from twin.inference.generate import GenParams
    from twin.serve.app import create_app

    adapter = engine.adapters["twin"]
    prompt, want = _trained_group_reply(engine, tmp_path)
    body = {
        "message": "great",
        "name": "Anna",
        "history": GROUP_HISTORY,
        "contact": "Climbing",
        "group": True,
    }
    with TestClient(create_app(engine, token="")) as client:
        got = client.post("/reply", json={**body, "temperature": 0, "max_new_tokens": 10}).json()
    assert got["usage"] == {"prompt_tokens": want.prompt_tokens, "completion_tokens": want.completion_tokens}
    assert got["reply"] == want.text
    from twin.serve.schemas import ReplyRequest

    # a client's unclean texts and names (Windows breaks, control characters) are cleaned as prepare cleans
    dirty = {**body, "message": "great\r\n", "name": "Anna\x00", "contact": "Climbing\x07",
             "history": [{**t, "text": t["text"].replace(" ", "\t") + "\x0b", "name": t.get("name")}
                         for t in GROUP_HISTORY]}  # fmt: skip
    for conv in (ReplyRequest(**body).conversation(), ReplyRequest(**dirty).conversation()):
        _, ids = engine.prompt_ids(adapter, conv, GenParams(max_new_tokens=10))
        assert ids == engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert conv.group and conv.contact == "Climbing" and conv.members == ("Anna", "Tom")


def test_openai_chat_completions_in_a_group_renders_the_prompt_the_twin_was_trained_on(engine, tmp_path):
    """The same group through the OpenAI route: user messages named by who wrote them, ``group`` and
    ``contact`` (the group's title) beside OpenAI's fields, give the prompt prepare + train made."""
    from fastapi.testclient import TestClient

    from twin.inference.generate import GenParams
    from twin.serve.app import create_app
    from twin.serve.schemas import ChatCompletionRequest

    adapter = engine.adapters["twin"]
    prompt, want = _trained_group_reply(engine, tmp_path)
    messages = [
        {"role": "system", "content": "ignored: the adapter's own template applies"},
        *({"role": "user" if t["role"] == "them" else "assistant", "content": t["text"], "name": t.get("name")}
          for t in GROUP_HISTORY),
        {"role": "user", "content": "great", "name": "Anna"},
    ]  # fmt: skip
    body = {"messages": messages, "group": True, "contact": "Climbing"}
    conv = ChatCompletionRequest(**body).conversation()
    _, ids = engine.prompt_ids(adapter, conv, GenParams(max_new_tokens=10))
    assert ids == engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert conv.group and conv.contact == "Climbing" and conv.members == ("Anna", "Tom")
    with TestClient(create_app(engine, token="")) as client:
        got = client.post("/v1/chat/completions", json={**body, "temperature": 0, "max_tokens": 10}).json()
    assert got["usage"]["prompt_tokens"] == want.prompt_tokens
    assert got["choices"][0]["message"]["content"] == want.text


def test_openai_personal_chat_is_named_by_the_last_user_message_unless_contact_says():
    from twin.serve.schemas import ChatCompletionRequest

    msgs = [{"role": "user", "content": "hi", "name": "Anna"}, {"role": "assistant", "content": "hey"},
            {"role": "user", "content": "free?", "name": "Bob"}]  # fmt: skip
    conv = ChatCompletionRequest(messages=msgs).conversation()
    assert (conv.contact, conv.group, conv.message) == ("Bob", False, "free?")
    assert conv.history == [
        {"role": "them", "text": "hi"},
        {"role": "me", "text": "hey"},
    ]  # one turn a message
    named = ChatCompletionRequest(messages=msgs, contact="Robert", chat_id=7).conversation()
    assert (named.contact, named.chat_id) == ("Robert", 7)


def test_eval_balances_chats_by_dialog_not_by_name():
    """Two deleted accounts, or a group called like a person, are different chats to the sample."""
    from twin.eval.run import _select, contact_spread

    def chat(did: int, name: str, n: int, **kw) -> list[dict]:
        return [{"dialog_id": did, "contact": name, "i": k, **kw} for k in range(n)]

    val = [*chat(1, "Deleted Account", 30), *chat(2, "Deleted Account", 30), *chat(3, "Anna", 30),
           *chat(4, "Anna", 30, group=True), *chat(5, "Bob", 30)]  # fmt: skip
    picked = _select(val, 20, seed=0)
    assert {d: sum(x["dialog_id"] == d for x in picked) for d in range(1, 6)} == dict.fromkeys(range(1, 6), 4)
    assert contact_spread(picked) == {"count": 5, "groups": 1, "max_share": 0.2}


def test_the_report_shows_a_groups_context_as_the_prompt_does(tmp_path):
    from twin.eval.report import _context_html

    _, second = _examples(_group_raw(tmp_path))
    shown = _context_html(second["context"], second["contact"], group=True)
    assert "Anna: who&#x27;s in for saturday?\nTom: me\n9 am?\nMe: count me in" in shown
    assert "Climbing:" not in shown


def test_a_groups_past_exchange_in_memory_is_shown_as_its_prompt_showed_it(tmp_path):
    from twin.memory import Memory, build_memory
    from twin.prompt import PLAIN_MEMORY

    data = tmp_path / "data"
    data.mkdir()
    rows = [{**ex, "session": f"s{i}"} for i, ex in enumerate(_examples(_group_raw(tmp_path)))]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    past = Memory.open(build_memory(data)).retrieve("saturday at 9?", 1, contact="Climbing", group=True)
    prompt = build_prompt([], "Tom: 9?", template=PLAIN_MEMORY, contact="Climbing", memory=past, group=True)
    section = "### How you answered similar messages before:\nAnna: who's in for saturday?\nTom: me\n9 am?\nMe: count me in\n"
    assert section in prompt  # not "Climbing: Anna: ...": the group is not a person


def test_drafts_in_a_group_asks_the_server_as_prepare_built_the_examples(tmp_path):
    """`twin drafts --chat <a group>`: the request names who wrote what (names scrubbed), the server
    turns it into the training example's context and message, and the feedback record keeps that shape."""
    from helpers.fake_telethon import group, msg, user

    from twin.drafts.chats import Chat
    from twin.drafts.context import conversation, records_of
    from twin.drafts.followup import _as_example
    from twin.serve.schemas import ReplyRequest
    from twin.text.scrub import Scrubber

    grp, anna, tom = group(55, "Climbing"), user(2, "Anna", "+1 415 555 0134"), user(3, "Tom")
    said = [(anna, "who's in for saturday?", False), (tom, "me", False), (tom, "9 am?", False),
            (None, "count me in", True), (anna, "great", False)]  # fmt: skip
    messages = []
    for i, (who, text, out) in enumerate(said, start=1):
        m = msg(grp, i, text, out=out)
        m._sender = who
        messages.append(m)
    chat = Chat(peer_id=-55, dialog_id=55, name="Climbing", input_entity=None, group=True)
    conv = conversation(records_of(messages, chat), chat, last_out=4, gap_hours=24, scrubber=Scrubber(),
                        context_chars=1024)  # fmt: skip
    assert conv.payload == {
        "message": "great", "name": "Anna [PHONE]", "contact": "Climbing", "group": True, "chat_id": 55,
        "history": [{"role": "them", "text": "who's in for saturday?", "name": "Anna [PHONE]"},
                    {"role": "them", "text": "me", "name": "Tom"}, {"role": "them", "text": "9 am?", "name": "Tom"},
                    {"role": "me", "text": "count me in"}],
    }  # fmt: skip
    served = ReplyRequest(**conv.payload).conversation()
    context, message, members = served.history, served.message, served.members
    assert served.chat_id == 55  # the raw files' dialog id: memory's same chat
    assert context == [
        {"role": "them", "text": "Anna [PHONE]: who's in for saturday?\nTom: me\n9 am?"},
        {"role": "me", "text": "count me in"},
    ]
    assert message == "Anna [PHONE]: great" and members == ("Anna [PHONE]", "Tom")
    assert _as_example(conv.payload) == (
        context,
        message,
        {"group": True, "members": ["Anna [PHONE]", "Tom"]},
    )


def test_a_groups_feedback_becomes_a_preference_pair_rendered_as_a_group():
    from twin.feedback import preference_pairs

    rec = {"contact": "Climbing", "group": True, "members": ["Anna"], "context": [], "instruction": "Anna: 9?",
           "outcome": "edited", "draft": "ok", "sent": "ok, 9 works"}  # fmt: skip
    (pair,) = preference_pairs([rec])
    prompt, _ = build_training_pair({**pair, "response": pair["chosen"]}, template=PLAIN)
    assert prompt.startswith("You are chatting in the group Climbing.") and "\nAnna: 9?\n" in prompt


def test_a_group_example_split_back_into_messages_is_served_as_it_was_trained(tmp_path):
    """The blind tab holds eval's rows (prepare's turns, labelled per person) and asks `/reply` for the
    twin's reply: split back into who wrote what, the server renders the example's own context,
    message and members, not a personal chat named after the group."""
    from twin.eval.run import _sample_rows
    from twin.prompt import group_messages
    from twin.serve.schemas import ReplyRequest

    for ex in _examples(_group_raw(tmp_path)):
        (row,) = _sample_rows([ex], [("base", "twin")])
        turns = [*row["context"], {"role": "them", "text": row["message"]}]
        *earlier, last = group_messages(turns, row["members"])
        payload = {"message": last["text"], "name": last["name"], "group": True, "contact": row["contact"],
                   "history": [{k: v for k, v in t.items() if v is not None} for t in earlier]}  # fmt: skip
        served = ReplyRequest(**payload).conversation()
        assert served.history == ex["context"] and served.message == ex["instruction"]
        assert list(served.members) == ex["members"] and served.contact == "Climbing"


def test_group_messages_takes_the_longest_label_and_keeps_a_members_other_lines():
    from twin.prompt import group_messages

    turns = [{"role": "them", "text": "Anna K: hi\nAnna: hey\nline two\nnote: not a member"}]
    assert group_messages(turns, ["Anna", "Anna K"]) == [
        {"role": "them", "name": "Anna K", "text": "hi"},
        {"role": "them", "name": "Anna", "text": "hey\nline two\nnote: not a member"},
    ]
