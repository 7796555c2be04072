"""Continuous batching (twin.inference.batch) on the tiny Falcon with two real LoRA adapters and the bare base:
a reply decoded in a mixed batch is token for token the reply decoded alone."""

from __future__ import annotations

import logging
import threading

import pytest

from twin.errors import TwinError
from twin.inference.generate import Conversation, GenParams

MESSAGES = [
    "are you coming tonight?",
    "did you see the game",
    "ok",
    "where are the keys?? I looked everywhere and they are not in the kitchen",
    "call me when you land",
    "lol",
    "what time is dinner",
    "send me the photos pls",
]
ADAPTERS = ["twin", "other", "base", "twin", "other", "base", "other", "twin"]


def submit(engine, i: int, params: GenParams, **kw):
    history = [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi"}][: i % 3]
    return engine.submit(
        engine.adapters[ADAPTERS[i]], Conversation(history, MESSAGES[i], "Alice"), params, **kw
    )


def alone(engine, params_for) -> list:
    return [submit(engine, i, params_for(i)).result(timeout=120) for i in range(len(MESSAGES))]


def together(engine, params_for) -> list:
    futures = [submit(engine, i, params_for(i)) for i in range(len(MESSAGES))]
    return [f.result(timeout=120) for f in futures]


def direct(engine, name: str, message: str, params: GenParams):
    """``generate`` on the engine's peft model with only ``name`` active (``base``: adapters off),
    on the prompt and stops the engine builds for a message from Alice with no history."""
    from dataclasses import replace

    from twin.inference.generate import Conversation, build_reply_prompt, generate, speaker_stops

    adapter = engine.adapters[name]
    prompt = build_reply_prompt(adapter.meta, engine.tokenizer, Conversation([], message, "Alice"))
    params = replace(params, extra_stops=speaker_stops("Alice", adapter.template))
    with engine.lock:
        if name == "base":
            with engine.model.disable_adapter():
                return generate(engine.model, engine.tokenizer, prompt, params)
        engine.model.set_adapter(name)
        return generate(engine.model, engine.tokenizer, prompt, params)


def same(a, b) -> bool:
    return (a.text, a.completion_tokens, a.stopped_by) == (b.text, b.completion_tokens, b.stopped_by)


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
def test_mixed_adapter_batch_equals_one_at_a_time(engine, sampled):
    def params_for(i: int) -> GenParams:
        # Different lengths, so rows leave the batch at different steps while others go on.
        n = 12 + 3 * i
        if sampled:
            return GenParams(max_new_tokens=n, min_new_tokens=n, temperature=1.0, top_k=0, top_p=1.0, seed=i)
        return GenParams(max_new_tokens=n, min_new_tokens=n, temperature=0)

    one = alone(engine, params_for)
    # Each adapter's reply through the engine is plain generate() with that adapter alone active (the
    # bare base: none), and the three differ: a batch that ignored adapters would not equal them.
    for i in (0, 3):
        replies = {name: engine.run(engine.adapters[name], Conversation([], MESSAGES[i], "Alice"), params_for(i))
                   for name in ("twin", "other", "base")}  # fmt: skip
        for name, got in replies.items():
            want = direct(engine, name, MESSAGES[i], params_for(i))
            assert same(got, want) and got.prompt_tokens == want.prompt_tokens, (i, name)
        assert len({g.text for g in replies.values()}) == 3, replies
    engine.scheduler.peak_batch = 0
    passes = engine.scheduler.multi_lora.passes if engine.scheduler.multi_lora else 0
    batched = together(engine, params_for)
    assert engine.scheduler.peak_batch >= 4  # they really shared forward passes
    # ... with every row's adapter applied by the stacked per-row path (not peft's adapter_names)
    assert engine.scheduler.multi_lora.stacked == ["twin", "other"]
    assert engine.scheduler.multi_lora.passes - passes >= 12
    assert [g.completion_tokens for g in one] == [12 + 3 * i for i in range(8)]
    for i, (a, b) in enumerate(zip(one, batched, strict=True)):
        assert same(a, b), (i, ADAPTERS[i], a, b)
    assert engine.scheduler.pending == 0


def test_a_request_joins_a_running_batch(engine):
    long = GenParams(max_new_tokens=60, min_new_tokens=60, temperature=0)
    short = GenParams(max_new_tokens=10, min_new_tokens=10, temperature=1.0, seed=7)
    ref = submit(engine, 3, short).result(timeout=120)
    events: list[str] = []
    first = threading.Event()

    def on_long(_d: str) -> None:
        events.append("long")
        first.set()

    a = submit(engine, 0, long, on_delta=on_long)
    assert first.wait(60)
    b = submit(engine, 3, short, on_delta=lambda _d: events.append("short"))
    got_b, got_a = b.result(timeout=120), a.result(timeout=120)
    assert same(got_b, ref)
    assert got_a.completion_tokens == 60
    # The short one started and finished while the long one was still decoding.
    last_short = max(i for i, e in enumerate(events) if e == "short")
    assert "long" in events[last_short + 1 :]


def test_a_cancelled_row_leaves_and_the_others_finish(engine, caplog):
    caplog.set_level(logging.INFO, logger="twin.inference.batch")
    params = GenParams(max_new_tokens=40, min_new_tokens=40, temperature=0)
    refs = [submit(engine, i, params).result(timeout=120) for i in (1, 2)]
    cancel = threading.Event()
    victim = submit(engine, 0, GenParams(max_new_tokens=400, min_new_tokens=400, temperature=0),
                    on_delta=lambda _d: cancel.set(), cancel=cancel)  # fmt: skip
    others = [submit(engine, i, params) for i in (1, 2)]
    gone = victim.result(timeout=120)
    assert gone.stopped_by == "cancelled" and gone.completion_tokens < 400
    for ref, f in zip(refs, others, strict=True):
        assert same(f.result(timeout=120), ref)
    assert engine.scheduler.pending == 0
    assert any("generation cancelled" in r.getMessage() for r in caplog.records)


def test_max_batch_is_as_many_rows_as_a_quarter_of_the_free_memory_holds():
    from twin.inference.batch import auto_max_batch

    gib, kib = 2**30, 2**10
    assert auto_max_batch(9 * gib, 8 * kib, 1536) == 32  # Falcon-7B: one key/value head, 8 KiB a token
    assert auto_max_batch(int(6.5 * gib), 128 * kib, 1536) == 4  # Llama-3-8B beside 16 GB of weights
    assert auto_max_batch(64 * 2**20, 128 * kib, 1536) == 1  # never none
    assert auto_max_batch(None, 8 * kib, 1536) == 8  # free memory unknown


def test_an_engine_told_no_max_batch_picks_it_from_memory_and_says_so(tiny_base, tiny_adapter, caplog):
    from twin.inference.batch import auto_max_batch, kv_bytes_per_token
    from twin.model.precision import available_memory
    from twin.serve.engine import Engine

    caplog.set_level(logging.INFO, logger="twin.serve.engine")
    engine = Engine(tiny_base, [("twin", tiny_adapter)])
    per_token = kv_bytes_per_token(engine.model)
    assert per_token < 64 * 1024  # the tiny model's cache: a batch of 32 takes a few MiB
    assert engine.max_batch == auto_max_batch(available_memory(), per_token, 4096) == 32
    line = next(r.getMessage() for r in caplog.records if "replies at once" in r.getMessage())
    assert "up to 32 replies at once (auto" in line


def test_token_cap_refuses_what_cannot_fit_with_a_log_line(tiny_base, caplog):
    from twin.inference.batch import Request, Scheduler
    from twin.model.load import load_base

    model, tok = load_base(tiny_base)
    sched = Scheduler(model, tok, max_batch=2, max_tokens=64)
    ids = tok("Alice: hello there, how are you?\nMe:", add_special_tokens=False)["input_ids"]
    caplog.set_level(logging.WARNING, logger="twin.inference.batch")
    with pytest.raises(TwinError, match="cap of 64 tokens in flight"):
        sched.submit(Request(ids, GenParams(max_new_tokens=64, temperature=0)))
    assert any("max_batch_tokens setting" in r.getMessage() for r in caplog.records)
    # Two that fit alone but not together: the second waits for the first, both are answered.
    n = 64 // 2 - len(ids) + 8
    futures = [sched.submit(Request(ids, GenParams(max_new_tokens=n, min_new_tokens=n, temperature=0)))
               for _ in range(2)]  # fmt: skip
    a, b = (f.result(timeout=120) for f in futures)
    assert a.text == b.text and sched.peak_batch == 1
    assert b.queue_seconds >= a.seconds * 0.5


def test_over_long_prompt_is_cut_like_training_keeping_the_header(tiny_base):
    from helpers.adapter_meta import meta_with

    from twin.inference.batch import Request, Scheduler
    from twin.inference.generate import Conversation, build_reply_prompt, generate, reply_prompt_ids
    from twin.model.load import load_base

    model, tok = load_base(tiny_base)
    model.config.max_position_embeddings = 96
    meta = meta_with(prepare={"max_context_tokens": 10_000})
    history = [
        {"role": "them" if i % 2 else "me", "text": f"turn number {i} of a long chat"} for i in range(30)
    ]
    ids = reply_prompt_ids(meta, tok, Conversation(history, "and the last one?", "Alice"), room=96 - 16)
    text = tok.decode(ids)
    header = build_reply_prompt(meta, tok, Conversation([], "X", "Alice")).split("X")[0]
    assert len(ids) <= 80 and text.startswith(header[:40])
    assert (
        "turn number 29" in text
        and "turn number 0 " not in text
        and text.endswith(build_reply_prompt(meta, tok, Conversation([], "and the last one?", "Alice"))[-30:])
    )
    # A message alone over the room loses its head, never the template around it.
    words = " ".join(f"w{i}" for i in range(200))
    ids = reply_prompt_ids(meta, tok, Conversation([], words, "Alice"), room=80)
    text = tok.decode(ids)
    assert len(ids) <= 80 and text.startswith(header[:40]) and "w199" in text and "w0 " not in text
    gen = Scheduler(model, tok).submit(Request(ids, GenParams(max_new_tokens=16, temperature=0))).result(60)
    assert gen.prompt_tokens == len(ids)
    with pytest.raises(TwinError, match="lower max_new_tokens"):
        reply_prompt_ids(meta, tok, Conversation([], words, "Alice"), room=5)
    # A raw prompt has no turns to drop: over the positions it is refused, never cut from the left.
    with pytest.raises(TwinError, match="over the model's 96 positions"):
        generate(
            model,
            tok,
            build_reply_prompt(meta, tok, Conversation([], words, "Alice")),
            GenParams(max_new_tokens=16),
        )


def test_clients_that_leave_while_queued_free_their_places(engine):
    """40 non-streaming clients hang up (8 decoding, 32 waiting): every place comes back, the next
    request is served at once."""
    import json
    import socket
    import time
    from urllib.parse import urlparse

    import httpx

    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    app = create_app(engine, token="", queue_size=32)
    # min_new_tokens: no reply may end on its own while the 40 are counted (sampling can draw EOS)
    reply = {
        "message": "hi",
        "adapter": "base",
        "max_new_tokens": 400,
        "min_new_tokens": 400,
        "temperature": 1.0,
    }
    body = json.dumps(reply).encode()
    with serve_in_thread(app) as url:
        u = urlparse(url)
        head = (f"POST /reply HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        socks = []
        try:
            for _ in range(40):
                s = socket.create_connection((u.hostname, u.port))
                s.sendall(head + body)
                socks.append(s)
            deadline = time.monotonic() + 30
            while httpx.get(url + "/healthz").json()["pending"] < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert httpx.get(url + "/healthz").json()["pending"] == 40
        finally:  # hung up even when the count fails, so no row outlives this test in the shared engine
            for s in socks:
                s.close()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/healthz").json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "/healthz").json()["pending"] == 0
        r = httpx.post(url + "/reply", json={"message": "hi", "max_new_tokens": 2}, timeout=30)
        assert r.status_code == 200 and r.json()["queue_s"] < 0.5
    assert engine.scheduler.pending == 0


def test_each_adapter_really_applies_in_a_mixed_batch(engine):
    # The same prompt under "twin", "other" and the bare base: three different models, three replies
    # (a scheduler that drove the bare base module would give one adapter's reply to all three).
    params = GenParams(max_new_tokens=16, min_new_tokens=16, temperature=0)
    futures = [
        engine.submit(engine.adapters[name], Conversation([], "what time is dinner", "Alice"), params)
        for name in ("twin", "other", "base")
    ]
    twin, other, base = (f.result(timeout=120).text for f in futures)
    assert len({twin, other, base}) == 3, (twin, other, base)


# Per-row LoRA (twin.inference.multi_lora): a mixed batch's rows get exactly what peft gives each alone.

ROWS = ["ann", "bob", None, "bob", "ann"]  # None: the bare base
TARGETS = {"falcon": ["query_key_value", "dense"], "llama": ["q_proj", "k_proj", "v_proj", "o_proj"]}
TARGETS["qwen2"] = TARGETS["llama"]


def tiny_peft(arch: str, adapters: dict[str, dict], seed: int = 0):
    """A tiny ``arch`` model (random init, toy sizes) with random, non-zero LoRA adapters on it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from twin.model.tiny import tiny_config

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(256, arch=arch, hidden_size=64, num_layers=2))
    peft_model = None
    for name, shape in adapters.items():
        cfg = LoraConfig(target_modules=TARGETS[arch], init_lora_weights=False, **shape)
        if peft_model is None:
            peft_model = get_peft_model(model, cfg, adapter_name=name)
        else:
            peft_model.add_adapter(name, cfg)
    return peft_model.eval()


def alone_logits(model, ids, names):
    """Each row on its own through peft's single-adapter path (``set_adapter`` / ``disable_adapter``)."""
    import contextlib

    import torch

    rows = []
    for i, name in enumerate(names):
        if name is not None:
            model.set_adapter(name)
        with torch.inference_mode(), model.disable_adapter() if name is None else contextlib.nullcontext():
            rows.append(model(input_ids=ids[i : i + 1]).logits)
    return torch.cat(rows)


def rows_logits(model, multi, ids, names):
    import torch

    with torch.inference_mode(), multi.rows(names):
        return model(input_ids=ids).logits


def assert_rows_differ(logits, names):
    """The same tokens under different adapters give different logits (so equality above means something)."""
    first = {name: logits[names.index(name)] for name in dict.fromkeys(names)}
    values = list(first.values())
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert (values[i] - values[j]).abs().max() > 1e-3, list(first)


@pytest.mark.parametrize("arch", ["falcon", "llama", "qwen2"])
def test_per_row_lora_equals_each_adapter_alone(arch):
    """Two adapters of different rank and scaling (one rsLoRA) and base rows, in one forward pass."""
    import torch

    from twin.inference.multi_lora import MultiLora

    model = tiny_peft(
        arch, {"ann": {"r": 4, "lora_alpha": 8}, "bob": {"r": 8, "lora_alpha": 4, "use_rslora": True}}
    )
    multi = MultiLora(model)
    assert multi.supported and multi.stacked == ["ann", "bob"] and multi.per_adapter == []
    ids = torch.randint(3, 256, (1, 9)).repeat(len(ROWS), 1)  # the same tokens in every row
    got = rows_logits(model, multi, ids, ROWS)
    want = alone_logits(model, ids, ROWS)
    assert_rows_differ(want, ROWS)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # float32 sums in another order
    # Afterwards the model is peft's again: the active adapter alone, the stack's hooks inert outside rows().
    model.set_adapter("bob")
    with torch.inference_mode():
        torch.testing.assert_close(model(input_ids=ids[:1]).logits, want[1:2], rtol=1e-4, atol=1e-5)
    assert multi.passes == 1


def test_a_stack_that_disagrees_with_peft_is_not_used(monkeypatch, caplog):
    """The stack reads peft internals; if they changed (here: B blocks off by a factor), the
    load-time check sees rows differ from peft's own and the scheduler keeps peft's mixed path."""
    from twin.inference import multi_lora

    model = tiny_peft("llama", {"ann": {"r": 4, "lora_alpha": 8}, "bob": {"r": 8, "lora_alpha": 4}})
    assert multi_lora.MultiLora(model).supported

    real = multi_lora.stack_layer

    def unscaled(layer, widths, scales):
        a, b = real(layer, widths, scales)
        return a, b / layer.scaling["ann"]

    monkeypatch.setattr(multi_lora, "stack_layer", unscaled)
    with caplog.at_level("WARNING", logger="twin.inference.multi_lora"):
        multi = multi_lora.MultiLora(model)
    assert not multi.supported and multi.passes == 0 and "differ from peft" in multi.reason
    assert "differ from peft's own" in caplog.text


def test_dora_rows_fall_back_to_peft_per_adapter_code():
    """DoRA scales by a learned magnitude, which a stacked B A cannot express: its rows are computed by
    peft's DoRA code on their own sub-batch (peft's own mixed-batch path refuses DoRA outright)."""
    import torch

    from twin.inference.multi_lora import MultiLora

    model = tiny_peft(
        "llama", {"ann": {"r": 4, "lora_alpha": 8}, "dora": {"r": 4, "lora_alpha": 8, "use_dora": True}}
    )
    multi = MultiLora(model)
    assert multi.stacked == ["ann"] and multi.per_adapter == ["dora"]
    names = ["dora", "ann", None, "dora"]
    ids = torch.randint(3, 256, (1, 9)).repeat(len(names), 1)
    want = alone_logits(model, ids, names)
    assert_rows_differ(want, names)
    torch.testing.assert_close(rows_logits(model, multi, ids, names), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="DoRA"), torch.inference_mode():
        model(input_ids=ids, adapter_names=["dora", "ann", "__base__", "dora"])


def test_scheduler_rebuilds_the_stack_when_adapters_change_and_leaves_other_lora_kinds_to_peft():
    from peft import LoraConfig

    from twin.inference.batch import Scheduler

    model = tiny_peft("llama", {"ann": {"r": 4, "lora_alpha": 8}})
    sched = Scheduler(model, None)
    multi = sched._multi_lora()
    assert multi is not None and multi.stacked == ["ann"] and sched._multi_lora() is multi
    model.add_adapter("bob", LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    rebuilt = sched._multi_lora()
    assert rebuilt is not multi and rebuilt.stacked == ["ann", "bob"]
    # LoRA on the embeddings is not a Linear layer: mixed batches keep peft's adapter_names there.
    model.add_adapter("e", LoraConfig(r=2, target_modules=["embed_tokens"], init_lora_weights=False))
    assert sched._multi_lora() is None
    assert sched.multi_lora.reason == "LoRA layers other than Linear (Embedding)"


def test_a_dora_adapter_in_a_mixed_batch_replies_as_alone(tiny_base, tiny_adapter, tmp_path):
    """End to end through the scheduler: DoRA rows share the batch with LoRA and base rows (peft's own
    per-row path would refuse the batch) and every reply is what it is alone."""
    import torch
    from peft import LoraConfig, get_peft_model

    from twin.adapter_meta import read_meta
    from twin.model.load import load_base
    from twin.serve.engine import Engine

    model, _ = load_base(tiny_base)
    torch.manual_seed(5)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["query_key_value"], use_dora=True,
                     init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(model, cfg).save_pretrained(tmp_path / "dora")
    read_meta(tiny_adapter).write(tmp_path / "dora")
    engine = Engine(tiny_base, [("twin", tiny_adapter), ("dora", tmp_path / "dora")], max_batch=4)
    names = ["dora", "twin", "base", "dora"]
    params = GenParams(max_new_tokens=12, min_new_tokens=12, temperature=0)

    def reply(i: int, name: str):
        return engine.submit(engine.adapters[name], Conversation([], MESSAGES[i], "Alice"), params)

    alone = [reply(i, name).result(timeout=120) for i, name in enumerate(names)]
    assert (
        alone[0].text
        != engine.run(engine.adapters["base"], Conversation([], MESSAGES[0], "Alice"), params).text
    )
    futures = [reply(i, name) for i, name in enumerate(names)]
    for i, (a, f) in enumerate(zip(alone, futures, strict=True)):
        assert same(a, f.result(timeout=120)), (i, names[i])
    multi = engine.scheduler.multi_lora
    assert multi.stacked == ["twin"] and multi.per_adapter == ["dora"] and multi.passes >= 8


def test_joining_prompts_share_one_prefill_and_the_running_rows_stay_in_place(engine):
    """Three requests arrive while a reply decodes: one forward pass prefills all three (left-padded),
    their KV cache goes into free slots without copying the running row's, and every reply is still
    what it is alone."""
    sched = engine.scheduler
    long = GenParams(max_new_tokens=50, min_new_tokens=50, temperature=0)
    short = [GenParams(max_new_tokens=8 + i, min_new_tokens=8 + i, temperature=0) for i in range(2)]
    short.append(GenParams(max_new_tokens=9, min_new_tokens=9, temperature=1.0, seed=3))
    joiners = [(3, short[0]), (5, short[1]), (6, short[2])]  # different prompt lengths and adapters
    ref_long = submit(engine, 0, long).result(timeout=120)
    refs = [submit(engine, i, p).result(timeout=120) for i, p in joiners]
    first = threading.Event()
    a = submit(engine, 0, long, on_delta=lambda _d: first.set())
    assert first.wait(60)
    relocations = sched.cache.relocations
    # The scheduler waits for the model (lock) and cannot plan a turn between two of the submits
    # (_cv, re-entrant): the three queue up together even when the scheduler thread is preempted.
    with sched.lock, sched._cv:
        prefills = sched.prefills
        futures = [submit(engine, i, p) for i, p in joiners]
    got = [f.result(timeout=120) for f in futures]
    assert same(a.result(timeout=120), ref_long)
    for i, (ref, g) in enumerate(zip(refs, got, strict=True)):
        assert same(ref, g), (i, ref, g)
    assert sched.prefills - prefills == 1
    assert sched.cache.relocations == relocations
    assert sched.pending == 0


def test_requests_that_arrive_during_a_prefill_join_before_the_next_step(engine):
    """8 requests sent at once reach the scheduler while it prefills the first: the other 7 are
    prefilled next, before any decode step, so all 8 decode in step (no 1-row step first), and every
    reply is still what it is alone."""
    params = [
        GenParams(max_new_tokens=12, min_new_tokens=12, temperature=0.8 if i == 5 else 0, seed=i)
        for i in range(8)
    ]
    refs = alone(engine, lambda i: params[i])
    shapes: list[tuple[int, int]] = []
    futures: list = []

    def record(_module, _args, kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        if len(shapes) == 1:  # the first request's prefill: the other 7 arrive meanwhile
            futures.extend(submit(engine, i, params[i]) for i in range(1, 8))

    handle = engine.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        got = [submit(engine, 0, params[0]).result(timeout=120)]
        got += [f.result(timeout=120) for f in futures]
    finally:
        handle.remove()
    for i, (ref, g) in enumerate(zip(refs, got, strict=True)):
        assert same(ref, g), (i, ref, g)
    prefills = [rows for rows, width in shapes if width > 1]
    steps = [rows for rows, width in shapes if width == 1]
    assert prefills == [1, 7]
    assert steps[0] == 8  # old: a 1-row step, then the 7 joined


def test_a_batch_of_base_rows_is_the_plain_base_model(engine, tiny_base):
    """Bare-base rows switch the LoRA layers off by their flag: the replies are the base model's own
    (loaded without peft), and adapter rows afterwards have their adapter back."""
    from dataclasses import replace

    from twin.inference.generate import Conversation, build_reply_prompt, generate, speaker_stops
    from twin.model.load import load_base

    model, tok = load_base(tiny_base)
    params = GenParams(max_new_tokens=14, min_new_tokens=14, temperature=0)
    twin_before = submit(engine, 0, params).result(timeout=120)
    futures = [submit(engine, i, params) for i in (2, 5)]  # ADAPTERS[2] and [5] are "base"
    base = engine.adapters["base"]
    for i, f in zip((2, 5), futures, strict=True):
        history = [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi"}][: i % 3]
        prompt = build_reply_prompt(base.meta, tok, Conversation(history, MESSAGES[i], "Alice"), base.memory)
        alone = generate(
            model, tok, prompt, replace(params, extra_stops=speaker_stops("Alice", base.template))
        )
        assert f.result(timeout=120).text == alone.text
    assert same(submit(engine, 0, params).result(timeout=120), twin_before)


def test_a_long_reply_appends_in_place(engine):
    """300 tokens: the batch's KV buffer grows a few times (doubling), not once per token."""
    sched = engine.scheduler
    before = sched.cache.relocations
    params = GenParams(max_new_tokens=300, min_new_tokens=300, temperature=0)
    gen = submit(engine, 1, params).result(timeout=300)
    assert gen.completion_tokens == 300
    assert sched.cache.relocations - before <= 3


def test_stacked_adapters_hook_each_layer_once():
    """The per-row hooks are registered when the stack is built, not at every forward pass (that cost
    more than the per-row delta at each decode step), and act only within ``rows()``."""
    import torch

    from twin.inference.multi_lora import MultiLora

    model = tiny_peft("llama", {"ann": {"r": 4, "lora_alpha": 8}, "bob": {"r": 4, "lora_alpha": 8}})
    multi = MultiLora(model)
    hooks = [len(s.module._forward_hooks) for s in multi.layers]
    ids = torch.randint(3, 256, (1, 5)).repeat(len(ROWS), 1)
    for _ in range(3):
        rows_logits(model, multi, ids, ROWS)
    assert [len(s.module._forward_hooks) for s in multi.layers] == hooks == [1] * len(multi.layers)
    multi.close()
    assert all(not s.module._forward_hooks for s in multi.layers)


def test_an_idle_scheduler_gives_freed_memory_back_once(tiny_base):
    # A prefill's freed activations stay in glibc's heap: once the batch has been idle for
    # idle_trim_s, the scheduler trims it (once per idle spell, not while requests keep coming).
    import time

    from twin.inference.batch import Request, Scheduler
    from twin.model.load import load_base

    model, tok = load_base(tiny_base)
    sched = Scheduler(model, tok, max_batch=2)
    sched.idle_trim_s = 0.3
    ids = tok("Alice: hello there, how are you?\nMe:", add_special_tokens=False)["input_ids"]
    params = GenParams(max_new_tokens=4, min_new_tokens=4, temperature=0)
    for _ in range(2):  # back to back: no idle spell in between
        sched.submit(Request(ids, params)).result(timeout=60)
    assert sched.trims == 0
    deadline = time.monotonic() + 10
    while sched.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # longer than idle_trim_s again: still one trim for this idle spell
    assert sched.trims == 1
    sched.submit(Request(ids, params)).result(timeout=60)
    time.sleep(1.0)
    assert sched.trims == 2


def test_the_stack_holds_each_adapter_once():
    """In a server, peft's A and B weights become views of the stack's blocks (one copy of each adapter,
    not two), with the same values, so single-adapter batches (peft's own path) give what they gave."""
    import torch

    from twin.inference.multi_lora import MultiLora

    model = tiny_peft(
        "llama", {"ann": {"r": 4, "lora_alpha": 8}, "bob": {"r": 8, "lora_alpha": 4, "use_rslora": True}}
    )
    ids = torch.randint(3, 256, (1, 9))
    model.set_adapter("bob")
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    layer = next(m for m in model.modules() if hasattr(m, "lora_A") and "ann" in m.lora_A)
    copies = {n: (layer.lora_A[n].weight.clone(), layer.lora_B[n].weight.clone()) for n in ("ann", "bob")}
    kept = MultiLora(model)  # by default (the eval, the preference stage's sampling): peft keeps its own
    assert (
        layer.lora_A["ann"].weight.untyped_storage().data_ptr()
        != kept.layers[0].a.untyped_storage().data_ptr()
    )
    kept.close()
    multi = MultiLora(model, share=True)  # a server's (Engine): one copy
    stacked = next(s for s in multi.layers if s.module is layer)
    for name, (a, b) in copies.items():
        assert (
            layer.lora_A[name].weight.untyped_storage().data_ptr() == stacked.a.untyped_storage().data_ptr()
        )
        assert (
            layer.lora_B[name].weight.untyped_storage().data_ptr() == stacked.b.untyped_storage().data_ptr()
        )
        assert torch.equal(layer.lora_A[name].weight, a) and torch.equal(layer.lora_B[name].weight, b)
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, before)
