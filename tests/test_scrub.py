"""PII scrubbing: measured exact scrubs on a labeled corpus, PII-free lines and answers that survive."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from twin.errors import TwinError
from twin.prepare.pipeline import PrepareConfig, run_prepare
from twin.records import iso_utc, make_record, write_dialog
from twin.text.scrub import TYPES, Scrubber, iban_ok, luhn_ok, scrub_messages

CORPUS = Path(__file__).parent / "data" / "pii"


def _tsv(name: str) -> list[dict]:
    with (CORPUS / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_corpus_every_value_replaced_and_nothing_else(capsys):
    """Each snippet must come out as its expected line: the value gone, every other character kept."""
    rows = _tsv("positives.tsv")
    assert len(rows) >= 420 and {r["type"] for r in rows} == set(TYPES)
    assert any(any("а" <= c <= "я" for c in r["snippet"]) for r in rows)  # both languages
    total, exact = Counter(), Counter()
    misses = []
    s = Scrubber("US,RU")
    for r in rows:
        out = s.scrub(r["snippet"])
        total[r["type"]] += 1
        if out == r["expected"] and r["value"] not in out:
            exact[r["type"]] += 1
        else:
            misses.append((r["type"], r["snippet"], out))
    with capsys.disabled():
        print("\nPII scrubbed exactly (tests/data/pii/positives.tsv):")
        for t in total:
            print(f"  {t:9s} {exact[t]:3d}/{total[t]:3d} = {exact[t] / total[t]:.1%}")
    assert not misses, misses  # the README says: every snippet of every type


def test_clean_lines_survive(capsys):
    lines = [ln for ln in (CORPUS / "clean.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) >= 400
    s = Scrubber("US,RU")
    changed = [(ln, s.scrub(ln)) for ln in lines if s.scrub(ln) != ln]
    with capsys.disabled():
        print(f"\nPII-free lines changed: {len(changed)}/{len(lines)}")
    assert not changed  # the README says: none


def test_answers_after_a_question():
    """The value in an answer to "what's the wifi password?" goes; other answers stay as written."""
    rows = _tsv("dialogs.tsv")
    assert sum(1 for r in rows if r["type"]) >= 30 and sum(1 for r in rows if not r["type"]) >= 30
    s = Scrubber("US,RU")
    for r in rows:
        assert scrub_messages([r["question"], r["answer"]], s) == [r["question"], r["expected"]], r
        if r["type"]:
            assert r["value"] not in r["expected"]
            assert s.scrub(r["answer"]) == r["answer"]  # alone, the answer is not caught: the context is


def _dialog_records(dialog_id: int, row: dict, answer_mine: bool) -> list[dict]:
    """Question, answer, and a reply, so that the answer is in an example either way round."""
    texts = [row["question"], row["answer"], "спасибо" if answer_mine else "thanks!", "ок"]
    return [
        make_record(
            source="telegram",
            dialog_id=dialog_id,
            dialog_name=f"c{dialog_id}",
            id=i + 1,
            date=iso_utc(1_700_000_000 + dialog_id * 86_400 * 3 + 60 * i),
            out=(i % 2 == 1) == answer_mine,
            text=text,
        )
        for i, text in enumerate(texts)
    ]


def test_answers_scrubbed_by_the_prepare_stage(tmp_path):
    """The real stage on two-message dialogs: secret answers are gone from every output line."""
    rows = _tsv("dialogs.tsv")
    raw = tmp_path / "raw" / "telegram"
    raw.mkdir(parents=True)
    for i, row in enumerate(rows):
        write_dialog(raw / f"{i + 1}.jsonl", _dialog_records(i + 1, row, answer_mine=i % 2 == 0))
    stats = run_prepare(PrepareConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "out")))
    out_text = "".join(
        (tmp_path / "out" / f).read_text(encoding="utf-8") for f in ("train.jsonl", "val.jsonl")
    )
    examples = [json.loads(line) for line in out_text.splitlines()]
    turns = {t["text"] for ex in examples for t in ex["context"]}
    turns |= {ex["instruction"] for ex in examples} | {ex["response"] for ex in examples}
    for row in rows:
        assert row["expected"] in turns, row
        if row["type"]:
            assert row["value"] not in out_text, row["type"]
    hits = Counter(r["type"] for r in rows if r["type"])
    assert all(stats["pii"][t] == n for t, n in hits.items()), (stats["pii"], hits)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("mail me at john.doe@example.com ok", "mail me at [EMAIL] ok"),
        ("call +1 415-555-2671 or 8 (916) 123-45-67", "call [PHONE] or [PHONE]"),
        ("card 4111 1111 1111 1111 pls", "card [CARD] pls"),
        ("card 4111 1111 1111 1112 pls", "card 4111 1111 1111 1112 pls"),  # fails Luhn
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN [IBAN]"),
        ("IBAN DE88 3704 0044 0532 0130 00", "IBAN DE88 3704 0044 0532 0130 00"),  # bad checksum
        ("server 192.168.1.10 and 2001:db8::1", "server [IP] and [IP]"),
        ("not an ip: 999.1.1.1", "not an ip: 999.1.1.1"),
        ("password: hunter2", "password: [PASSWORD]"),
        ("мой пароль от вайфая qwerty123", "мой пароль от вайфая [PASSWORD]"),
        ("the password is wrong", "the password is wrong"),
        ("пароль не подходит", "пароль не подходит"),
        ("код из смс 482915", "код из смс [CODE]"),
        ("пин 7391.", "пин [CODE]."),
        ("code review at 15:30", "code review at 15:30"),
        (
            "https://user:pw@host.com/x and https://ex.com/?token=abc123def",
            "https://[URL]@host.com/x and https://ex.com/?token=[URL]",
        ),
        ("https://github.com/huggingface/peft", "https://github.com/huggingface/peft"),
        ("meet at 15:30 on 2024-03-01, $12.50, v1.2.3, order #4815162342", None),
        ("обновись до версии 10.0.0.1", None),
        ("пицца 1500 ₽, заказ №12345678, в 19:30", None),
        ("api key: 8f7a9c2b11", "api key: [SECRET]"),
        ("токен = abc123def456", "токен = [SECRET]"),
        ("the key point is 2024 growth", None),
        ("pw: Sommer2024", "pw: [PASSWORD]"),
        ("boarding pass: 10:30, gate 12", None),
        ("", ""),
        ("code: 482-913", "code: [CODE]"),
        ("код 731 045", "код [CODE]"),
        ("my password is sunshine", "my password is [PASSWORD]"),
        ("пароль qwerty", "пароль [PASSWORD]"),
        ("the mountain pass is closed", None),
        ("pass the salt please", None),
        ("the password is working again", None),
        (
            "https://basescan.org/token/0x0bb4c0ffee0bb4c0ffee0bb4c0ffee0bb4c0ffee#balances",
            "https://basescan.org/token/[CRYPTO]#balances",
        ),
        ("https://github.com/huggingface/peft/commit/6f3d7536f3d7536f3d7536f3d7536f3d7536f3d7", None),
        ("btc 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 ok", "btc [CRYPTO] ok"),
        ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "[CRYPTO]"),
        ("http://10.0.0.7:8080/admin", "http://[IP]:8080/admin"),
        (
            "https://wa.me/+79161234567 or https://wa.me/79161234567",
            "https://wa.me/[PHONE] or https://wa.me/[PHONE]",
        ),
        ("ftp://admin:hunter2@10.0.0.5/backup", "ftp://[URL]@[IP]/backup"),
        # private invite links: the hash lets anyone join, short as it is; public names stay
        ("join https://t.me/+2hK9xLmQ4ZdlMGYy now", "join https://t.me/+[URL] now"),
        ("t.me/joinchat/AAAAAEHbEkejzxUjAUCzYA", "t.me/joinchat/[URL]"),
        ("https://chat.whatsapp.com/Hx2AbCdEfGh3IjKlMnOpQr", "https://chat.whatsapp.com/[URL]"),
        ("tg://join?invite=AbCdEfGhIjKl", "tg://join?invite=[URL]"),
        ("https://t.me/durov and t.me/s/somechannel", None),
        ("http://[2001:db8::1]:8080/x", "http://[[IP]]:8080/x"),
        ("привет 👋 как дела? 😅", None),
    ],
)
def test_examples(text, expected):
    assert Scrubber("US,RU").scrub(text) == (text if expected is None else expected)


def test_keys_and_tokens():
    s = Scrubber()
    for key in (
        "sk-abcdefghijklmnopqrstuvwxyz123456",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xoxb-123456789012-abcdefghijKLMN",
        "AKIAIOSFODNN7EXAMPLE",
        "glpat-abcdefghij0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "Zq8vN2xK4pL7mR1sT9wY3bC6dF0gH5jQ",  # high entropy, no prefix
    ):
        assert s.scrub(f"token {key} ok") == "token [SECRET] ok", key
    # long but ordinary: a slug, a word, a number
    for text in ("see my-long-blog-post-title-about-2024", "supercalifragilisticexpialidocious", "1" * 30):
        assert s.scrub(text) == text


def test_counts_not_values():
    s = Scrubber()
    s.scrub("a@b.io and c@d.io, +7 916 482-73-15")
    assert s.counts == Counter({"EMAIL": 2, "PHONE": 1})
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in s.counts.items())


def test_region_controls_national_numbers():
    us_only = Scrubber("US")
    assert us_only.scrub("до 8 (916) 123-45-67") == "до 8 (916) 123-45-67"
    assert Scrubber("RU").scrub("до 8 (916) 123-45-67") == "до [PHONE]"
    # written as a phone (after a phone word), a national number of any region goes
    assert us_only.scrub("номер 8 (916) 123-45-67") == "номер [PHONE]"
    assert us_only.scrub("intl +7 916 123-45-67 works anywhere") == "intl [PHONE] works anywhere"


def test_a_country_code_without_the_plus_counts_in_the_chats_own_regions():
    ua_lk = Scrubber("US,RU", extra=("UA", "LK"))
    assert ua_lk.scrub("мій 380671234567") == "мій [PHONE]"
    assert ua_lk.scrub("මගේ 94771234567") == "මගේ [PHONE]"
    # a region the chat gives no sign of keeps a bare run of digits (an id, a tracking number)
    assert Scrubber("US,RU").scrub("мій 380671234567") == "мій 380671234567"
    assert ua_lk.scrub("order 380671234567, ok 123456789012") == "order 380671234567, ok 123456789012"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No. 25, Galle Road, Colombo", "[ADDRESS]"),
        ("send to 45 Flower Mawatha", "send to [ADDRESS]"),
        ("අංක 25, ගාලු පාර", "[ADDRESS]"),
        ("මම 25/3 මහනුවර පාර ළඟ", "මම [ADDRESS] ළඟ"),
        ("3 වෙනි පාර කියන්නේ", None),  # පාර is also "time": the third time
        ("I ran 3, then road cycling", None),
        ("пін 1234, пін-код 4321", "пін [CODE], пін-код [CODE]"),
        ("ул Ленина 5-12, заходи", "[ADDRESS], заходи"),  # house 5, flat 12
    ],
)
def test_sinhala_and_south_asian_addresses_and_ukrainian_pins(text, expected):
    assert Scrubber().scrub(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # street-word addresses typed in lower case, with or without the dot
        ("ул ленина 5", "[ADDRESS]"),
        ("ул. ленина, д. 5, кв. 3", "[ADDRESS]"),
        ("вул шевченка 12", "[ADDRESS]"),
        ("живу на вул. шевченка, 12", "живу на [ADDRESS]"),
        ("пр-т мира 7", "[ADDRESS]"),
        ("просп. победы 3/1", "[ADDRESS]"),
        ("бульвар шевченка 4", "[ADDRESS]"),  # was kept: a full street word wanted a capitalised name
        ("бульвар шевченка, 4", "[ADDRESS]"),
        ("проспект мира 15к2", "[ADDRESS]"),
        ("переулок тихий 3", "[ADDRESS]"),
        ("улица ленина 5", "[ADDRESS]"),
        ("вулиця шевченка 12", "[ADDRESS]"),
        ("пр. мира 7", "[ADDRESS]"),
        ("пр-кт мира 7", "[ADDRESS]"),
        ("б-р шевченка 4", "[ADDRESS]"),
        ("ул маршала жукова 7", "[ADDRESS]"),  # a two-word name in lower case
        ("бульвар лесі українки 4", "[ADDRESS]"),
        # not addresses
        ("на улице жарко 30 градусов", None),
        ("шоссе было 5 минут", None),
        ("бульвар в 5 минутах", None),
        ("набережная 3 км", None),
        ("проспект компании 2024", None),
        ("и пр. вещи 5 штук", None),
        ("пр. 2024", None),
        ("улица было 5", None),
        ("бульвар в котором 5 кафе", None),
        ("на ул ленина есть 5 кафе", None),
        ("улица такая длинная 5 км", None),
        ("площадь 50 кв м", None),
        ("в 5 кв. отчёт", None),
        ("встретимся в 10:30", None),
        ("12.05.2024 в 18:00", None),
        ("это стоит 5000 руб", None),
        # phones of many countries, with the "+" country code, and a Sri Lankan national number
        ("+94 77 123 4567", "[PHONE]"),
        ("+94771234567", "[PHONE]"),
        ("call 077 123 4567", "call [PHONE]"),
        ("+380 67 123 4567", "[PHONE]"),
        ("+7 916 123-45-67", "[PHONE]"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("+49 30 12345678", "[PHONE]"),
        ("+91 98765 43210", "[PHONE]"),
        ("+234 803 123 4567", "[PHONE]"),
        ("+55 11 91234-5678", "[PHONE]"),
        ("+86 138 0013 8000", "[PHONE]"),
        ("+1 415 555 2671", "[PHONE]"),
        # valid phones whose digits pass the Luhn check: they were "+[CARD]"
        ("ring me +4915112345678", "ring me [PHONE]"),
        ("ring me +493041483960306", "ring me [PHONE]"),  # 15 digits, a Berlin line
        ("ring me +2348037866648", "ring me [PHONE]"),
        ("ring me +5511961845766", "ring me [PHONE]"),
        ("ring me +8613898041050", "ring me [PHONE]"),
    ],
)
def test_lower_case_streets_and_phones_of_many_countries(text, expected):
    assert Scrubber().scrub(text) == (text if expected is None else expected)


def test_a_plus_number_is_never_a_card():
    """One "+" number in ten passes the Luhn check; with its country code it is a phone, not a card."""
    import random

    rng, s = random.Random(0), Scrubber()
    numbers = ["+" + cc + "".join(rng.choice("0123456789") for _ in range(rng.randint(9, 13)))
               for cc in ("94", "380", "7", "44", "49", "91", "234", "55", "86", "1") for _ in range(200)]  # fmt: skip
    assert sum(luhn_ok(n[1:]) for n in numbers) > 100
    assert not [n for n in numbers if "[CARD]" in s.scrub(f"my number {n}")]
    assert s.scrub("card 4111 1111 1111 1111 pls") == "card [CARD] pls"  # a card is still one


@pytest.mark.parametrize("extra", [(), ("UA", "LK")])
def test_a_date_and_a_time_are_not_a_phone(extra):
    s = Scrubber("US,RU", extra=extra)
    for text in ("в 2024-01-15 10:30", "15.01.2024 10:30 ok", "2024-01-15T10:30:00"):
        assert s.scrub(text) == text
    assert s.scrub("2024-01-15 10:30, 067 123 45 67") == "2024-01-15 10:30, [PHONE]"


def test_crypto_checksums_decide():
    s = Scrubber()
    # one character changed: the Base58Check / bech32 checksum fails, so it is not an address
    for bad in ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp"):
        assert "[CRYPTO]" not in s.scrub(f"send to {bad}")
    assert s.counts["CRYPTO"] == 0


def test_hold_reply_keeps_the_question_in_view():
    s = Scrubber()
    msgs = ["what's the code?", "sec", "4821", "and the pin for the door?", "no idea", "4821"]
    assert scrub_messages(msgs, s) == ["what's the code?", "sec", "[CODE]", msgs[3], "no idea", "4821"]
    assert s.counts == Counter({"CODE": 1})


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


PLANTED = {  # value -> how it is said; "zqxj" is a letter run no other text here has
    "zqxj.vortex@example.com": "my email is zqxj.vortex@example.com",
    "zqxjpelican7": "zqxjpelican7",  # the answer to the question before it
    "zqxjsunshine": "my password is zqxjsunshine",
    "4111 1111 1111 1111": "card 4111 1111 1111 1111",
}


def _planted_raw(root: Path) -> list[str]:
    """Raw dialogs that repeat the planted PII often enough for a tokenizer to learn it as tokens."""
    texts = []
    for d in range(1, 9):
        lines = [("what's the wifi password?", False), (PLANTED["zqxjpelican7"], True)]
        lines += [(v, i % 2 == 0) for i, v in enumerate(PLANTED.values()) if v != "zqxjpelican7"]
        lines += [("haha ok see you tomorrow", False), ("sure, see you", True)]
        recs = [
            make_record(source="telegram", dialog_id=d, dialog_name=f"c{d}", id=i + 1,
                        date=iso_utc(1_700_000_000 + 60 * i), out=out, text=t)
            for i, (t, out) in enumerate(lines * 6)
        ]  # fmt: skip
        write_dialog(root / "telegram" / f"{d}.jsonl", recs)
        texts += [t for t, _ in lines * 6]
    return texts


def test_tiny_base_sees_only_scrubbed_text(tmp_path, monkeypatch):
    """`twin model tiny`: no planted PII in any tokenizer file nor in any pretraining batch."""
    import torch
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.model.tiny import train_tokenizer

    raw_texts = _planted_raw(tmp_path / "data" / "raw")
    # the check can see a leak: a tokenizer trained on the raw text has learned the planted run
    assert "zqxj" in train_tokenizer(raw_texts, 400, 64).backend_tokenizer.to_str()
    monkeypatch.chdir(tmp_path)
    small = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--vocab-size", "400"]
    # raw records only: the raw text is not used (the built-in corpus is), nor taken when named
    assert (
        CliRunner().invoke(app, ["model", "tiny", "--out", "b0", "--pretrain-steps", "0", *small]).exit_code
        == 0
    )
    assert "zqxj" not in (tmp_path / "b0" / "tokenizer.json").read_text(encoding="utf-8")
    bad = CliRunner().invoke(app, ["model", "tiny", "--out", "b1", "--texts", "data/raw", *small])
    assert isinstance(bad.exception, TwinError) and "no train.jsonl" in str(bad.exception)
    run_prepare(PrepareConfig(raw="data/raw", out="data/processed"))
    batches: list[torch.Tensor] = []

    def record(module, args):
        if isinstance(module, torch.nn.Embedding):
            batches.append(args[0].clone())

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        res = CliRunner().invoke(app, ["model", "tiny", "--out", "b2", "--pretrain-steps", "2", *small])
    finally:
        hook.remove()
    assert res.exit_code == 0, res.output
    files = [p for p in (tmp_path / "b2").iterdir() if p.suffix != ".safetensors"]
    assert any(p.name == "tokenizer.json" for p in files)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "b2")
    seen = [tok.decode(row) for b in batches for row in b]
    # the scrubbed chats were the text (the contacts' side: the default base never reads your replies)
    assert len(batches) == 2 and re.search(r"\[(CARD|PHONE|EMAIL|IBAN)\]", "".join(seen))
    for value in PLANTED:
        assert not any(value in p.read_text(encoding="utf-8") for p in files), value
        assert not any(value in text for text in seen), value
    assert not any("zqxj" in p.read_text(encoding="utf-8") for p in files)


def test_a_key_asked_for_is_taken_but_low_key_and_a_handle_are_not():
    """'low key' is slang, and a Telegram @username after a question is a handle (found in a generated
    Sinhala/English chat: 'low key, කොහොමද? @friend42' came out as '[SECRET]')."""
    s = Scrubber()
    msgs = ["what is the api key? sk9f8d7s6a5q", "whats the key?", "abc123xyz789"]
    assert scrub_messages(msgs, s) == ["what is the api key? [SECRET]", "whats the key?", "[SECRET]"]
    plain = [
        "low key, how are you? @friend42",
        "whats his key?",
        "@friend_4242",
        "Low-key: who's in? ab12cd34ef",
    ]
    assert scrub_messages(plain, s) == plain
