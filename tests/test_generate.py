"""twin.inference.generate on the real tiny Falcon: greedy == transformers' generate, seeds, streaming, stops."""

from __future__ import annotations

import math

import pytest
from helpers.adapter_meta import meta_with

from twin.errors import TwinError
from twin.inference.generate import (
    Conversation,
    Generation,
    GenParams,
    build_reply_prompt,
    context_counter,
    generate,
    speaker_stops,
    visible_text,
)
from twin.inference.stops import _partial_stop
from twin.prompt import CHAT, STOP_STRINGS, build_prompt, build_training_pair, fit_context

META = meta_with(prepare={"max_context_tokens": 10, "chars_per_token": 4.0})


@pytest.fixture(scope="module")
def tiny(tiny_base):
    from twin.model.load import load_base

    return load_base(tiny_base)


@pytest.fixture(scope="module")
def prompt(tiny):
    _, tok = tiny
    return build_reply_prompt(
        META, tok, Conversation([{"role": "them", "text": "hey"}], "how are you?", "Alice")
    )


class Scripted:
    """The real tiny Falcon whose next-token choice is overridden to spell out ``script``.

    The forward pass (and KV cache) is the real model's; only the logits are replaced, so the
    decoding loop's stop handling can be tested on text an untrained model would not write.
    """

    def __init__(self, model, script: list[int]):
        self.model, self.script, self.step = model, script, 0
        self.config, self.generation_config = model.config, model.generation_config

    def parameters(self):
        return self.model.parameters()

    def get_base_model(self):
        return self.model

    def __call__(self, **kw):
        out = self.model(**kw)
        logits = out.logits.clone()
        logits[:, -1, :] = -1e9
        logits[:, -1, self.script[min(self.step, len(self.script) - 1)]] = 1e9
        self.step += 1
        out.logits = logits
        return out


def test_greedy_matches_transformers_generate(tiny, prompt):
    import torch

    model, tok = tiny
    params = GenParams(max_new_tokens=24, temperature=0, repetition_penalty=1.1)
    ours = generate(model, tok, prompt, params)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=24,
            do_sample=False,
            repetition_penalty=1.1,
            min_new_tokens=1,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    ref, cut = visible_text(tok.decode(new, skip_special_tokens=True), STOP_STRINGS, final=True)
    assert ours.text == ref
    assert ours.prompt_tokens == enc["input_ids"].shape[1]
    if cut:  # a stop string: ours stops there, transformers' generate goes on
        assert ours.stopped_by == "stop" and ours.completion_tokens <= len(new)
    else:  # every token transformers produced is counted (an EOS it stopped on is not a reply token)
        eos = new[-1] == tok.eos_token_id
        assert (ours.completion_tokens, ours.stopped_by) == (len(new) - eos, "eos" if eos else "length")
    assert ours.tokens_per_s == ours.completion_tokens / ours.seconds


def test_seed_and_greedy_are_deterministic(tiny, prompt):
    model, tok = tiny
    sampled = [
        generate(model, tok, prompt, GenParams(max_new_tokens=16, temperature=1.0, seed=7)) for _ in range(2)
    ]
    assert sampled[0].text == sampled[1].text
    assert sampled[0].completion_tokens == sampled[1].completion_tokens
    others = {
        generate(model, tok, prompt, GenParams(max_new_tokens=16, temperature=1.0, seed=s)).text
        for s in range(4)
    }
    assert len(others) == 4  # the seed really drives sampling: four seeds, four replies
    greedy = [
        generate(model, tok, prompt, GenParams(max_new_tokens=16, temperature=0)).text for _ in range(2)
    ]
    assert greedy[0] == greedy[1]


def _streamed(model, tok, prompt: str, params: GenParams) -> tuple[list[str], Generation]:
    """The text deltas the server streams (the batch scheduler's ``on_delta``), and the whole reply."""
    from twin.inference.batch import Request, Scheduler

    deltas: list[str] = []
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    future = Scheduler(model, tok, max_batch=1).submit(Request(ids, params, on_delta=deltas.append))
    return deltas, future.result(timeout=120)


def test_stream_deltas_join_to_the_reply(tiny, prompt):
    model, tok = tiny
    params = GenParams(max_new_tokens=20, temperature=1.0, seed=3)
    deltas, streamed = _streamed(model, tok, prompt, params)
    assert all(deltas)
    whole = generate(model, tok, prompt, params)
    assert "".join(deltas) == streamed.text == whole.text
    assert (streamed.prompt_tokens, streamed.completion_tokens, streamed.stopped_by) == (
        len(_ids(tok, prompt)),
        whole.completion_tokens,
        whole.stopped_by,
    )


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    ("script", "extra", "want", "reason"),
    [
        ("sure, see you at 7\nAlice: no wait", speaker_stops("Alice"), "sure, see you at 7", "stop"),
        ("ok then\n### Their new message:\nbye", (), "ok then", "stop"),
        ("  thanks!  ", (), "thanks!", "eos"),
        # An opening speaker label (the context's "Name: text" layout copied) is not part of the reply.
        ("Alice: see you at 7", speaker_stops("Alice"), "see you at 7", "eos"),
        ("Me: ok\nAlice: fine", speaker_stops("Alice"), "ok", "stop"),
        ("Ali is here", speaker_stops("Alice"), "Ali is here", "eos"),
        # chat templates get the same guard: "Masha: я" / "Me:" leaked from a transcript-read base
        ("Masha: я\nMe: ок", speaker_stops("Masha", CHAT), "я", "stop"),
        ("Me: sure thing\nMasha: ok", speaker_stops("Masha", CHAT), "sure thing", "stop"),
        ("Them: hi", speaker_stops(None, CHAT), "hi", "eos"),
        # another contact's label (the old tiny base copied them from its transcripts): no stop names it
        ("Олег (работа): отлично", speaker_stops("Мама"), "отлично", "eos"),
        ("ок, понял 👌\nКатя: сто лет", speaker_stops("Мама"), "ок, понял 👌", "stop"),
        ("what time?\nSam Carter: 7", speaker_stops("Alice"), "what time?", "stop"),
        # not labels: lower-case "key: value" lines, "P.S:", a capitalised line without a colon
        ("np\nhotel in berlin: [PHONE]", speaker_stops("Alice"), "np\nhotel in berlin: [PHONE]", "eos"),
        ("P.S: see you\nI think so", speaker_stops("Alice"), "P.S: see you\nI think so", "eos"),
    ],
)
def test_stops_at_stop_strings_and_eos(tiny, prompt, script, extra, want, reason):
    model, tok = tiny
    ids = [*_ids(tok, script), tok.eos_token_id]
    params = GenParams(max_new_tokens=len(ids) + 5, temperature=0, repetition_penalty=1.0, extra_stops=extra)
    gen = generate(Scripted(model, ids), tok, prompt, params)
    assert gen.text == want
    assert gen.stopped_by == reason
    # Streaming never shows a character past the stop, not even transiently.
    deltas, _ = _streamed(Scripted(model, ids), tok, prompt, params)
    assert "".join(deltas) == want
    labels = ("Alice", "Masha", "Me:", "Them", "#", "Олег", "Катя", "Sam")
    assert all(label not in d for d in deltas for label in labels)


def test_generation_passes_the_cache_under_the_name_the_model_takes(tiny, prompt):
    """transformers 5.2x renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40)."""
    import warnings

    from twin.inference.batch import Request, Scheduler

    model, tok = tiny
    params = GenParams(max_new_tokens=4, min_new_tokens=4, temperature=0)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with warnings.catch_warnings():  # the filter is global: the scheduler's thread raises too
        warnings.filterwarnings("error", message=".*past_key_values.*", category=FutureWarning)
        gen = generate(model, tok, prompt, params)
        sched = Scheduler(model, tok)
        batched = [sched.submit(Request(ids, params)) for _ in range(2)]  # prefill, then decode steps
        assert [f.result(60).completion_tokens for f in batched] == [4, 4]
    assert gen.completion_tokens == 4


def test_the_lm_head_is_handed_dense_rows_in_prefills_and_steps(tiny, prompt):
    """The prompt's last position reaches the LM head with standard strides, alone and batched.

    transformers' ``logits_to_keep=1`` slice keeps the whole prompt's batch stride, and torch 2.13
    cannot fold ``F.linear`` of such an input when the head needs no grad (a peft twin): it copies the
    whole head for a ``bmm`` (1.6 s a prefill on Qwen2.5-0.5B's head at bf16, bench/RESULTS.md).
    """
    from twin.inference.batch import Request, Scheduler

    model, tok = tiny
    seen: list[tuple[tuple, tuple]] = []
    hook = model.get_output_embeddings().register_forward_pre_hook(
        lambda _m, args: seen.append((tuple(args[0].shape), args[0].stride()))
    )
    params = GenParams(max_new_tokens=3, min_new_tokens=3, temperature=0)
    try:
        generate(model, tok, prompt, params)
        sched = Scheduler(model, tok)
        short = tok("hi", add_special_tokens=False)["input_ids"]
        long = tok(prompt, add_special_tokens=False)["input_ids"]
        batched = [sched.submit(Request(ids, params)) for ids in (long, short, long)]
        assert [f.result(60).completion_tokens for f in batched] == [3, 3, 3]
    finally:
        hook.remove()
    dense = [s == (shape[1] * shape[2], shape[2], 1) for shape, s in seen]
    assert len(seen) >= 6 and all(dense), seen
    assert any(shape[0] > 1 for shape, _ in seen)  # a batched prefill or step was among them


def test_max_new_tokens_caps_the_reply(tiny, prompt):
    model, tok = tiny
    ids = _ids(tok, "one two three four five six seven eight nine ten")
    gen = generate(Scripted(model, ids), tok, prompt, GenParams(max_new_tokens=3, temperature=0))
    assert gen.completion_tokens == 3 and gen.stopped_by == "length"
    assert gen.text == tok.decode(ids[:3]).strip()


def test_visible_holds_back_possible_stop_prefixes():
    assert _partial_stop("hello\n#", STOP_STRINGS) == 2
    assert _partial_stop("hello", STOP_STRINGS) == 0
    assert visible_text("hi there\n##", STOP_STRINGS, final=False) == ("hi there", False)
    assert visible_text("hi there\n##", STOP_STRINGS, final=True) == ("hi there\n##", False)
    assert visible_text("a\n### b", STOP_STRINGS, final=False) == ("a", True)
    assert visible_text("caf\ufffd", STOP_STRINGS, final=False) == ("caf", False)
    # An opening that may still become a speaker label is held back; "Me" alone, at the end, is a reply.
    labels = speaker_stops("Mom")
    assert visible_text("Mo", labels, final=False) == ("", False)
    assert visible_text(" Mom: hi", labels, final=False) == ("hi", False)
    assert visible_text("Me", labels, final=True) == ("Me", False)
    assert visible_text("Mommy dearest", labels, final=False) == ("Mommy dearest", False)
    # any name-shaped line start is held back until it is known not to be a label
    assert visible_text("ok\nOleg (wor", labels, final=False) == ("ok", False)
    assert visible_text("ok\nOleg (work): hi", labels, final=False) == ("ok", True)
    assert visible_text("ok\nOleg is here", labels, final=False) == ("ok\nOleg is here", False)
    assert visible_text("Олег (работа): отлично", STOP_STRINGS, final=True)[0].startswith("Олег")  # guard off


def test_build_reply_prompt_is_the_training_prompt(tiny):
    _, tok = tiny
    history = [
        {"role": "them", "text": "first " * 10},
        {"role": "me", "text": "second"},
        {"role": "them", "text": "third"},
    ]
    prompt = build_reply_prompt(META, tok, Conversation(history, "what now?", "Bob"))
    kept = fit_context(history, 40, len)
    assert kept == history[1:]  # the oldest turn is over the 40-char budget
    example = {"context": kept, "instruction": "what now?", "response": "x", "contact": "Bob"}
    assert prompt == build_training_pair(example)[0]
    assert "first" not in prompt and "Bob: third" in prompt


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_context_tokens": 100, "chars_per_token": 2.5},
        {"tokenizer": "base", "max_context_tokens": 64},
    ],
)
def test_serving_keeps_the_context_prepare_kept(settings):
    # twin.json's "prepare" is prepare's ContextSettings as dumped into stats.json (with prepare's
    # other settings): the record gives serving back the very settings prepare cut with.
    from twin.examples import ContextSettings

    recorded = ContextSettings(**settings)
    dumped = {**recorded.model_dump(mode="json"), "val_fraction": 0.1, "scrub": True}
    assert meta_with(prepare=dumped).context == recorded


def test_context_units_follow_the_adapter_meta(tiny):
    _, tok = tiny
    history = [{"role": "them", "text": "a" * 70}, {"role": "me", "text": "b" * 35}]
    chars = meta_with(prepare={"max_context_tokens": 10, "chars_per_token": 3.6})
    # no tokenizer at prepare: characters, 10 x 3.6 = 36; the 35-char turn (+1) fits, the 70-char one does not.
    assert chars.context.context_unit == "chars" and chars.context.context_budget == 36
    assert build_reply_prompt(chars, tok, Conversation(history, "m")) == build_prompt(history[1:], "m")
    real = meta_with(prepare={"tokenizer": "base", "max_context_tokens": 10_000, "chars_per_token": 3.5})
    assert build_reply_prompt(real, tok, Conversation(history, "m")) == build_prompt(history, "m")
    count = len(tok("b" * 35, add_special_tokens=False)["input_ids"])
    tight = meta_with(prepare={"tokenizer": "base", "max_context_tokens": count + 1})
    assert build_reply_prompt(tight, tok, Conversation(history, "m")) == build_prompt(history[1:], "m")
    # tokens but no tokenizer to count them with: prepare's estimate, ceil(chars / chars_per_token)
    assert context_counter(real.context, None)("b" * 35) == math.ceil(35 / 3.5) == 10


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_new_tokens=0),
        dict(temperature=-1),
        dict(top_p=0),
        dict(top_p=1.5),
        dict(top_k=-1),
        dict(repetition_penalty=0),
    ],
)
def test_bad_params_are_twin_errors(tiny, prompt, bad):
    model, tok = tiny
    with pytest.raises(TwinError, match=next(iter(bad))):
        generate(model, tok, prompt, GenParams(**bad))


def test_min_new_tokens_blocks_an_immediate_eos(tiny, prompt):
    model, tok = tiny
    only_eos = [tok.eos_token_id]  # the scripted model wants to stop at every step
    empty = generate(Scripted(model, only_eos), tok, prompt, GenParams(temperature=0, min_new_tokens=0))
    assert (empty.text, empty.completion_tokens, empty.stopped_by) == ("", 0, "eos")
    for n in (1, 3):  # EOS is blocked for exactly n tokens, then taken
        gen = generate(
            Scripted(model, only_eos),
            tok,
            prompt,
            GenParams(max_new_tokens=4, temperature=0, min_new_tokens=n),
        )
        assert (gen.completion_tokens, gen.stopped_by) == (n, "eos")


class CountingTokenizer:
    """The real tokenizer, recording how many tokens each ``decode`` call is given."""

    def __init__(self, tok):
        self.tok, self.widths = tok, []

    def decode(self, ids, **kw):
        self.widths.append(len(ids))
        return self.tok.decode(ids, **kw)


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_text_is_the_decoded_reply(tiny, seed):
    """The reply text is decoded a few tokens at a time (so a token costs the same at any length), and
    is at every step what decoding all the tokens gives; the decode window stays a few tokens wide."""
    import random

    from twin.inference.generate import Decoding

    model, tok = tiny
    rng = random.Random(seed)
    params = GenParams(max_new_tokens=300, min_new_tokens=300, temperature=0)
    dec = Decoding(model, tok, _ids(tok, "Alice: hi\nMe:"), params)
    dec.tokenizer = counting = CountingTokenizer(tok)
    vocab = [t for t in range(len(tok)) if t not in dec.eos and t not in tok.all_special_ids]
    steps = 0
    while not dec.done:
        dec.accept(rng.choice(vocab))
        steps += 1
        full = tok.decode(dec.generated, skip_special_tokens=True)
        if full.endswith("\ufffd"):  # an incomplete character waits for its next byte
            assert full.startswith(dec.text)
        else:
            assert dec.text == full
    assert steps > 20  # random text rarely spells a stop string early
    assert max(counting.widths[:-1]) <= 10  # the last call is the one full decode as the reply ends


def test_batched_greedy_scores_are_each_replys_own(tiny):
    """Greedy rows of a batch (prompts of different lengths, different penalties) are scored together
    and pick the token each would pick alone; the penalty is transformers' own, bit for bit."""
    import torch
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    from twin.inference.decoding import Decoding, greedy_tokens, padded_seqs, penalize_repeats

    model, tok = tiny
    penalties = [1.1, 1.0, 1.3, 1.1]
    decs = [
        Decoding(model, tok, _ids(tok, f"Alice: hi {'there ' * i}\nMe:"), GenParams(max_new_tokens=8, min_new_tokens=2 * i,
                 temperature=0, repetition_penalty=p))
        for i, p in enumerate(penalties)
    ]  # fmt: skip
    for d in decs:
        d.accept(7)  # a reply token every row has already produced
    torch.manual_seed(0)
    logits = torch.randn(len(decs), len(tok))
    want = RepetitionPenaltyLogitsProcessor(1.1)(decs[0].seq, logits[:1].clone())
    got = logits[:1].clone()
    penalize_repeats(got, padded_seqs(decs)[:1], 1.1)  # padded: the row's first token repeated
    assert torch.equal(got, want)  # bit for bit
    alone = [int(d.scores(logits[i : i + 1].clone()).argmax(-1)) for i, d in enumerate(decs)]
    # EOS made the most likely token: rows still under min_new_tokens must not pick it
    eos = decs[0].eos_index[0]
    logits[:, eos] = 100.0
    blocked = [int(d.scores(logits[i : i + 1].clone()).argmax(-1)) for i, d in enumerate(decs)]
    assert blocked[0] == eos and all(t != eos for t in blocked[1:])
    assert greedy_tokens(decs, logits.clone()) == blocked
    logits[:, eos] = -100.0
    assert greedy_tokens(decs, logits.clone()) == alone


@pytest.mark.parametrize("target", [1, 4, 7, 10])
def test_a_long_prompt_drops_exactly_the_fewest_oldest_turns(tiny, target):
    """The cut found by bisection is the one dropping turns one by one gives: the longest newest
    part of the history whose prompt fits, and nothing more is dropped."""
    from twin.inference.prompting import fit_prompt_ids
    from twin.prompt import build_prompt

    _, tok = tiny
    history = [
        {"role": "them" if i % 2 else "me", "text": f"turn {i} " + "word " * (i % 4)} for i in range(11)
    ]

    def length(turns: list[dict]) -> int:
        prompt = build_prompt(turns, "and now?", template="plain-v1", contact="Bob", tokenizer=tok)
        return len(tok(prompt, add_special_tokens=False)["input_ids"])

    lengths = [length(history[d:]) for d in range(len(history) + 1)]
    room = lengths[target]  # the prompt with ``target`` turns dropped fits exactly
    one_by_one = next(d for d, n in enumerate(lengths) if n <= room)
    report: dict = {}
    ids = fit_prompt_ids(
        tok, history, "and now?", template="plain-v1", contact="Bob", room=room, report=report
    )
    assert 0 < one_by_one <= target
    assert report == {"context_dropped": one_by_one, "message_cut": False}
    assert len(ids) == lengths[one_by_one] <= room
