"""The tiny bases: Falcon-7B's (and Llama 3's, Qwen2's) architecture at toy size, for tests and the CPU demo.

It keeps what matters to the code that trains and serves Falcon-7B — ``FalconForCausalLM``,
multi-query attention, parallel attention/MLP, rotary positions, no biases, the fused
``query_key_value`` projection LoRA targets — and is saved with ``save_pretrained`` next to a
byte-level BPE tokenizer trained on the pretraining text (below), so it loads through exactly the
code path (:func:`twin.model.load.load_base`) a downloaded Falcon-7B does. ``arch="llama"`` and
``"qwen2"`` build Llama 3- and Qwen2.5-shaped models the same way, their tokenizers carrying the
family's special tokens and chat template (:mod:`twin.model.chat_templates`).

``pretrain_steps`` trains all parameters briefly on that text (plain next-token prediction), so
the demo's replies are words rather than noise; the LoRA fine-tune then teaches the format and style.
The text is the contacts' side of the chats only (their messages, in the prompt layout): like a
real base, the tiny one has never read the owner, so ``twin eval``'s base is a fair "not you".
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.fileio import atomic_dir, iter_jsonl
from twin.model.chat_templates import ARCHS, FAMILIES, TokenizerFamily

log = logging.getLogger(__name__)

# `twin model tiny`'s and the demo's default: enough for words rather than byte noise (a base with
# 0 steps writes random bytes); ~1-3 min on 2 shared cores.
PRETRAIN_STEPS = 150

# Used when no chat text is given (tests): enough variety for a BPE vocabulary in two alphabets.
_FALLBACK_LINES = (
    "hey! how are you doing today?",
    "pretty good, just got back from work. you?",
    "same here, tired but fine :) want to grab dinner later?",
    "sure, where do you want to go? the usual place?",
    "let's try the new ramen bar near the station",
    "ok see you at 7 then",
    "did you watch the game last night? it was crazy",
    "no, I missed it, was it good?",
    "thanks a lot, you're the best",
    "lol that's hilarious",
    "can you send me the photos from the trip?",
    "I'll call you in five minutes",
    "happy birthday!! have an amazing day",
    "where are you? we're already here",
    "running late, sorry, the bus is stuck in traffic",
    "привет! как дела?",
    "нормально, работаю. а у тебя?",
    "давай встретимся завтра вечером",
    "хорошо, во сколько?",
    "спасибо большое!",
    "ок, договорились",
    "я сейчас занят, перезвоню позже",
    "с днём рождения! всего самого лучшего",
)


def fallback_texts() -> list[str]:
    """A small built-in chat corpus (English and Russian) for when no user text is available."""
    lines = list(_FALLBACK_LINES)
    docs = []
    for i in range(len(lines)):
        turns = [lines[(i + k) % len(lines)] for k in range(4)]
        docs.append("\n".join(f"{'Me' if k % 2 else 'Them'}: {t}" for k, t in enumerate(turns)))
    # Also the prompt scaffolding, so its words are single tokens rather than byte soup.
    docs.append(
        "You are chatting with a friend. Write your reply to their message the way you usually write.\n"
        "### Your previous communication:\n### Their new message:\n### Your response:\n"
    )
    return docs


def texts_from_dir(
    path: str | os.PathLike, *, plain_prompts: bool = True, owner_replies: bool = False
) -> list[str]:
    """Chat text for the tokenizer and pretraining, from a prepare output (its ``train.jsonl``).

    By default only the contacts' side: each of their messages as the reply to the contact message
    before it, in plain-v1's prompt (:func:`contact_conversations`). The owner's own messages are
    never read, so the tiny base plays a real base (Falcon, Llama, Qwen) that has never seen them and
    the eval's base-vs-twin comparison measures what fine-tuning adds. Every document is a prompt with
    its reply, never a bare ``Name: text`` transcript: a base that read transcripts carried the layout
    on after the response cue and opened replies with a speaker label ("Олег (работа): ...").

    ``owner_replies=True``: the old corpus (transcripts with the owner's replies, and plain-v1's
    prompt with the owner's reply once per session), for a base that already writes like the owner.
    ``plain_prompts``: plain-v1 prompts at all (a chat family's base reads its chat template's
    renderings instead: :func:`chat_docs`); without them the contacts' texts are documents on their own.

    Only scrubbed text: raw records are refused, because the tokenizer (copied into every adapter,
    merged model and GGUF) and the pretrained weights would learn their PII.
    """
    train = _train_file(path)
    examples = _examples(train)
    docs = _owner_docs(examples, plain_prompts) if owner_replies else _contact_docs(examples, plain_prompts)
    if not docs:
        raise TwinError(f"{train}: no examples in it; run `twin prepare` again")
    return docs


def _train_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise TwinError(f"{p}: text directory not found; run `twin prepare` first or omit --texts")
    train = p / "train.jsonl" if p.is_dir() else p
    if train.name != "train.jsonl" or not train.is_file():
        raise TwinError(
            f"{p}: no train.jsonl; give a `twin prepare` output dir (raw records are not used: "
            "the base must only see PII-scrubbed text)"
        )
    return train


def _examples(train: Path) -> list[dict]:
    keys = {"context", "instruction", "response"}
    return [ex for _, ex in iter_jsonl(train) if isinstance(ex, dict) and keys <= ex.keys()]


def _owner_docs(examples: Sequence[dict], plain_prompts: bool) -> list[str]:
    """The old corpus: every example as a transcript ending in the owner's reply, and plain-v1's
    prompt with the owner's reply once per session."""
    from twin.prompt import build_prompt, render_context

    docs: list[str] = []
    seen_sessions: set[str] = set()
    for ex in examples:
        turns = [*ex["context"], {"role": "them", "text": ex["instruction"]}]
        turns.append({"role": "me", "text": ex["response"]})
        docs.append(render_context(turns, ex.get("contact")))
        session = str(ex.get("session"))
        if plain_prompts and session not in seen_sessions:  # the prompt's own wording, once per session
            seen_sessions.add(session)
            # With the reply after it: a bare prompt followed by EOS taught the base that a
            # reply is empty, and the nearest thing to it, a "Name: text" transcript line.
            prompt = build_prompt([], ex["instruction"], contact=ex.get("contact"))
            docs.append(prompt + ex["response"])
    return docs


def _contact_docs(examples: Sequence[dict], plain_prompts: bool) -> list[str]:
    """The contacts' side only: plain-v1 prompts whose reply is the contact's next message."""
    from twin.prompt import build_prompt

    convs = contact_conversations(examples)
    if not plain_prompts:
        return [c["response"] for c in convs]
    return [
        build_prompt(c["context"], c["instruction"], contact=c.get("contact")) + c["response"] for c in convs
    ]


# Earlier contact messages shown as context in a contacts-only document (enough for the layout).
_CONTACT_CONTEXT = 3


def contact_messages(examples: Sequence[dict]) -> list[tuple[str | None, list[str]]]:
    """``[(contact, their distinct messages in order), ...]`` per session; nothing the owner wrote."""
    sessions: dict[str, tuple[str | None, dict[str, None]]] = {}
    for ex in examples:
        key = str(ex.get("session", ex.get("dialog_id")))
        _, texts = sessions.setdefault(key, (ex.get("contact"), {}))
        for turn in ex["context"]:
            if turn.get("role") == "them":
                texts[turn.get("text", "")] = None
        texts[ex["instruction"]] = None
    return [(contact, [t for t in texts if t.strip()]) for contact, texts in sessions.values()]


def contact_conversations(examples: Sequence[dict]) -> list[dict]:
    """Examples in prepare's format built from the contacts' side alone: each contact message is the
    "reply" to their message before it, with up to :data:`_CONTACT_CONTEXT` earlier ones as context.

    The base learns the language, the prompt layout and where a reply ends, from people who are not
    the owner — as a real base knows language but not its user.
    """
    convs: list[dict] = []
    for contact, texts in contact_messages(examples):
        for i in range(1, len(texts)):
            earlier = texts[max(0, i - 1 - _CONTACT_CONTEXT) : i - 1]
            context = [{"role": "them", "text": t} for t in earlier]
            convs.append(
                {"context": context, "instruction": texts[i - 1], "response": texts[i], "contact": contact}
            )
    return convs


# Chat renderings mixed into a chat family's pretraining: enough for the turn layout, cheap to render.
_MAX_CHAT_DOCS = 1024


def fallback_conversations() -> list[dict]:
    """The built-in corpus as examples (their line, my reply, the line before as context)."""
    lines = _FALLBACK_LINES
    n = len(lines)
    return [
        {
            "context": [{"role": "me", "text": lines[(i - 1) % n]}] if i % 2 else [],
            "instruction": lines[i],
            "response": lines[(i + 1) % n],
            "contact": None,
        }
        for i in range(n)
    ]


def conversations_from_dir(path: str | os.PathLike, *, owner_replies: bool = False) -> list[dict]:
    """Examples for chat-format pretraining from a prepare output's ``train.jsonl`` (scrubbed): the
    contacts' side only (:func:`contact_conversations`), or with ``owner_replies`` the owner's own."""
    p = Path(path)
    train = p / "train.jsonl" if p.is_dir() else p
    if not train.is_file():
        return []
    examples = _examples(train)
    return examples if owner_replies else contact_conversations(examples)


def chat_docs(tokenizer: Any, conversations: Sequence[dict]) -> list[str]:
    """Conversations rendered as chat-v1 renders a training example: prompt, reply, end-of-turn token."""
    from twin.prompt import CHAT, build_training_pair, check_chat_template

    end = check_chat_template(tokenizer)
    step = max(1, len(conversations) // _MAX_CHAT_DOCS)  # spread over all chats, not the first few
    rows = conversations[::step][:_MAX_CHAT_DOCS]
    return ["".join(build_training_pair(ex, template=CHAT, tokenizer=tokenizer, turn_end=end)) for ex in rows]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    model_max_length: int,
    *,
    arch: str = "falcon",
    pad_vocab_to: int | None = None,
    family: TokenizerFamily | None = None,
) -> Any:
    """Byte-level BPE (as Falcon's, Llama 3's and Qwen2's own): any text round-trips, no unknown tokens.

    The family's special tokens come first and its chat template is attached (:mod:`chat_templates`);
    ``family`` overrides ``arch``'s (e.g. a real model's exact special tokens and their ids).
    ``pad_vocab_to`` fills the vocabulary with never-produced entries up to a real model's size.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    family = family or _family(arch)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(family.special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if pad_vocab_to is not None:
        tok = _pad_vocab(tok, pad_vocab_to)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=family.eos,
        bos_token=family.bos,
        pad_token=family.pad,
        model_max_length=model_max_length,
    )
    if family.chat_template:
        fast.chat_template = family.chat_template
    return fast


def _family(arch: str) -> TokenizerFamily:
    if arch not in FAMILIES:
        raise TwinError(f"--arch {arch!r} is unknown; use one of {', '.join(ARCHS)}")
    return FAMILIES[arch]


def _pad_vocab(tok: Any, size: int) -> Any:
    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(size - tok.get_vocab_size()):  # never produced: no merge leads to them
        vocab[f"<|unused_{i}|>"] = len(vocab)
    padded = Tokenizer.from_str(json.dumps(spec))
    if padded.get_vocab_size() != size:
        raise TwinError(f"tokenizer has {padded.get_vocab_size()} entries, wanted {size}")
    return padded


def tiny_config(
    vocab_size: int,
    *,
    arch: str = "falcon",
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 1024,
    token_ids: dict[str, Any] | None = None,
) -> Any:
    """The family's config with its real architecture switches and toy sizes.

    Falcon as Falcon-7B (multi-query, parallel attention/MLP, tied embeddings); Llama as Llama 3
    (grouped-query attention, SwiGLU, RMSNorm, rope theta 500k, untied head as in the 8B); Qwen2 as
    Qwen2.5-7B (the same plus q/k/v biases, rope theta 1M).
    """
    ids = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1, **(token_ids or {})}
    if arch == "falcon":
        from transformers import FalconConfig

        return FalconConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            multi_query=True,  # Falcon-7B: one shared key/value head
            parallel_attn=True,  # attention and MLP read the same layer norm output
            new_decoder_architecture=False,
            alibi=False,  # rotary positions
            bias=False,
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            **ids,
        )
    from transformers import LlamaConfig, Qwen2Config

    config_cls, rope_theta = {"llama": (LlamaConfig, 500_000.0), "qwen2": (Qwen2Config, 1_000_000.0)}[arch]
    return config_cls(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),  # grouped-query attention
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5 if arch == "llama" else 1e-6,
        rope_theta=rope_theta,
        tie_word_embeddings=False,
        **ids,
    )


def pretrain(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    steps: int,
    batch_size: int = 16,
    block_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Brief next-token pretraining of all parameters on ``texts`` packed into blocks; returns losses."""
    import torch
    from tqdm.auto import tqdm

    # tokenizing comes before the bar can move (~3 s for a 90,000-message account): say so
    log.info("pretraining %d steps: tokenizing %d documents first", steps, len(texts))
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        if not enc or enc[-1] != tokenizer.eos_token_id:  # a chat rendering ends in it already
            ids.append(tokenizer.eos_token_id)
    data = torch.tensor(ids, dtype=torch.long)
    block_size = min(block_size, max(8, len(data) // 2))
    if len(data) <= block_size + 1:
        raise TwinError("not enough text to pretrain the tiny model; give more chats or --pretrain-steps 0")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="pretraining tiny base", unit="step", dynamic_ncols=True)
    for step in bar:
        starts = torch.randint(0, len(data) - block_size - 1, (batch_size,), generator=gen)
        x = torch.stack([data[s : s + block_size] for s in starts])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps - 1:
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def build_tiny(
    out_dir: str | os.PathLike,
    texts: Iterable[str] | None = None,
    *,
    arch: str = "falcon",
    pretrain_steps: int = 0,
    seed: int = 0,
    vocab_size: int = 2048,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 1024,
    pretrain_batch_size: int = 16,
    pretrain_block_size: int = 128,
    pretrain_lr: float = 3e-3,
    conversations: Sequence[dict] | None = None,
) -> Path:
    """Build (and optionally pretrain) a tiny ``arch`` model + tokenizer into ``out_dir``; returns it.

    For a chat family (llama, qwen2) pretraining also reads ``conversations`` (examples in prepare's
    format; default: the built-in corpus's) rendered through its chat template exactly as chat-v1
    trains on them, so the base already ends a reply with its end-of-turn token.
    Deterministic for a given ``seed`` and text. The directory is replaced atomically.
    """
    docs = [t for t in (texts if texts is not None else fallback_texts()) if t and t.strip()]
    if not docs:
        raise TwinError("no text to train the tiny tokenizer on; give chat text or omit --texts")
    if hidden_size % num_heads:
        raise TwinError(f"hidden_size {hidden_size} must be a multiple of num_heads {num_heads}")
    from twin.prompt import system_prompt

    family = _family(arch)
    # a chat family's system message (chat-v1) is in every prompt: its words become tokens too
    tokenizer_docs = [*docs, system_prompt(None)] if family.chat_template else docs
    # a 90,000-message account's text keeps this and the model's set-up busy ~5 s: say so
    log.info("training a %d-entry tokenizer on %d documents", vocab_size, len(tokenizer_docs))
    tokenizer = train_tokenizer(tokenizer_docs, vocab_size, max_positions, arch=arch)
    model = _init_model(arch, tokenizer, seed, hidden_size, num_layers, num_heads, max_positions)
    losses: list[float] = []
    chat: list[str] = []
    if pretrain_steps > 0:
        if family.chat_template:
            chat = chat_docs(tokenizer, conversations or fallback_conversations())
        losses = pretrain(
            model,
            tokenizer,
            docs + chat,
            steps=pretrain_steps,
            batch_size=pretrain_batch_size,
            block_size=pretrain_block_size,
            lr=pretrain_lr,
            seed=seed,
        )
        log.info("pretrained %d steps: loss %.3f -> %.3f", pretrain_steps, losses[0], losses[-1])
    record = {"built_by": "twin model tiny", "arch": arch, "seed": seed, "documents": len(docs)}
    record["chat_documents"] = len(chat)
    record |= {"pretrain_steps": pretrain_steps, "pretrain_loss": [losses[0], losses[-1]] if losses else None}
    record["parameters"] = sum(p.numel() for p in model.parameters())
    return _save(Path(out_dir), model, tokenizer, record)


def _init_model(
    arch: str,
    tokenizer: Any,
    seed: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    max_positions: int,
) -> Any:
    """The randomly initialised model; generation stops at every end token of the family."""
    # torch's and the model class's imports: most of the 6.3-7.5 s after the tokenizer's line
    log.info("building the %s model: %d layers, hidden size %d", arch, num_layers, hidden_size)
    import torch
    from transformers import AutoModelForCausalLM

    family = _family(arch)
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in family.stop]
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    cfg = tiny_config(
        len(tokenizer),
        arch=arch,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_positions=max_positions,
        token_ids=ids,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.eos_token_id = stop_ids if len(stop_ids) > 1 else stop_ids[0]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _save(out: Path, model: Any, tokenizer: Any, record: dict) -> Path:
    from twin.model.load import hf_progress_bars

    with atomic_dir(out) as tmp, hf_progress_bars(False):  # a few MB: a bar would only flash
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "tiny.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
