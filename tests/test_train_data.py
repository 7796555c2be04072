"""Tokenization, length-grouped batching and LR schedules (pure functions, no model)."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest

from twin.examples import encode_examples
from twin.train.config import SchedulerName
from twin.train.data import make_batches, padding_fraction


def test_batches_are_deterministic_complete_and_shuffled() -> None:
    lengths = [random.Random(i).randrange(10, 300) for i in range(200)]
    a = make_batches(lengths, 8, seed=1, epoch=0)
    assert a == make_batches(lengths, 8, seed=1, epoch=0)  # resume replays the same order
    assert a != make_batches(lengths, 8, seed=1, epoch=1)  # a new order each epoch
    assert sorted(i for b in a for i in b) == list(range(200))
    assert all(len(b) <= 8 for b in a)
    ungrouped = make_batches(lengths, 8, seed=1, epoch=0, group_by_length=False)
    assert padding_fraction(a, lengths) < 0.1 < padding_fraction(ungrouped, lengths)
    # Grouped, yet not sorted globally: long and short batches are interleaved.
    maxes = [max(lengths[i] for i in b) for b in a]
    assert maxes != sorted(maxes) and maxes != sorted(maxes, reverse=True)


def test_batches_split_evenly_across_processes() -> None:
    lengths = list(range(10, 110))  # 100 examples / 8 -> 13 micro-batches
    batches = make_batches(lengths, 8, seed=0, epoch=0, world_size=2)
    assert len(batches) == 12
    r0, r1 = batches[0::2], batches[1::2]
    assert len(r0) == len(r1) and not {i for b in r0 for i in b} & {i for b in r1 for i in b}


def test_encode_trims_context_cuts_replies_and_drops_hopeless(tiny_base: Path, caplog) -> None:
    from twin.model.load import load_tokenizer

    tok = load_tokenizer(tiny_base)
    long_ctx = [{"role": "them" if i % 2 else "me", "text": f"message number {i} " * 5} for i in range(30)]
    examples = [
        {"context": long_ctx, "instruction": "ok?", "response": "fine"},  # context trimmed
        {"context": [], "instruction": "story?", "response": "once upon a time " * 60},  # reply cut
        {"context": [], "instruction": "word " * 300, "response": "hm"},  # hopeless: dropped
        {"context": [], "instruction": "hi", "response": "yo"},
    ]
    data = encode_examples(examples, tok, "plain-v1", 128)
    assert data.stats == {"examples": 4, "context_trimmed": 1, "dropped_prompt_too_long": 1, "reply_cut": 1}
    assert len(data) == 3 and max(data.lengths) <= 128
    eos = tok.eos_token_id
    assert data.ids[0][-1] == eos and data.ids[2][-1] == eos
    assert data.ids[1][-1] != eos and len(data.ids[1]) == 128  # a cut reply never "ends"
    assert "1 of 4 examples dropped" in caplog.text
    # The trimmed prompt kept the newest turns.
    assert "message number 29" in tok.decode(data.ids[0][: data.prompt_lens[0]])
    assert "message number 0 " not in tok.decode(data.ids[0][: data.prompt_lens[0]])


def test_encoding_is_cached_beside_the_data(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import shutil

    from twin.examples import read_examples
    from twin.model.load import load_tokenizer
    from twin.train import data as train_data

    tok = load_tokenizer(tiny_base)
    src = tmp_path / "train.jsonl"
    shutil.copy(processed_dir / "train.jsonl", src)
    rows = read_examples(src)
    monkeypatch.setattr(train_data, "CHUNK", 40)  # several chunks: they must join up exactly
    want = encode_examples(rows, tok, "plain-v1", 128)
    first = train_data.encode_cached(rows, src, tiny_base, tok, "plain-v1", 128)
    assert (first.ids, first.prompt_lens, first.stats) == (want.ids, want.prompt_lens, want.stats)
    assert len(list((tmp_path / ".twin-cache").glob("encoded-*.npz"))) == 1
    # A hit never touches the tokenizer.
    hit = train_data.encode_cached(rows, src, tiny_base, None, "plain-v1", 128)
    assert (hit.ids, hit.prompt_lens, hit.stats) == (want.ids, want.prompt_lens, want.stats)
    # Another max length, or other data in the file, is another entry (the tokenizer is needed again).
    with pytest.raises(AttributeError):
        train_data.encode_cached(rows, src, tiny_base, None, "plain-v1", 100)
    src.write_text(src.read_text() + src.read_text().splitlines()[0] + "\n")
    with pytest.raises(AttributeError):
        train_data.encode_cached(rows, src, tiny_base, None, "plain-v1", 128)


SCHEDULES = get_args(SchedulerName)  # every schedule a config may name


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules(name: str) -> None:
    import torch

    from twin.train.schedules import build_scheduler, warmup_steps

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1.0)
    sched = SimpleNamespace(name=name, warmup_ratio=0.1, num_cycles=2, power=2.0, lr_end=0.01)
    s = build_scheduler(sched, opt, 100)
    lrs = []
    for _ in range(100):
        lrs.append(s.get_last_lr()[0])
        opt.step()
        s.step()
    assert warmup_steps(100, 0.1) == 10
    if name == "constant":
        assert lrs == [1.0] * 100
        return
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and lrs[10] == pytest.approx(1.0)  # warmup
    tail = lrs[10:]
    if name == "constant_with_warmup":
        assert set(tail) == {1.0}
    elif name == "inverse_sqrt":
        assert all(a >= b for a, b in zip(tail, tail[1:], strict=False)) and tail[-1] < 0.5
    elif name == "cosine_with_restarts":
        assert min(tail[:50]) < 0.05 and max(tail[50:]) > 0.95  # decays, then restarts
    else:
        assert all(a >= b for a, b in zip(tail, tail[1:], strict=False))
        assert tail[-1] < (0.05 if name != "polynomial" else 0.05 + 0.01)
