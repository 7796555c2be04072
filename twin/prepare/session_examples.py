"""``twin prepare``'s examples cut from sessions, and the train/val split (pure functions).

For every turn of mine with words that follows a turn of theirs: ``instruction`` = their turn,
``response`` = my turn's words (:attr:`~twin.text.sessions.Turn.reply`: a mark such as ``[sticker]``
is never learnt), ``context`` = the earlier turns of the session, cut from the oldest side by
:func:`twin.prompt.fit_context`. A session that opens with my turn uses it as context only, as is a
turn of mine without words (a sticker, a voice message).
The split is by blocks of consecutive examples (:func:`split_session`), chosen by hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from twin.prompt import fit_context
from twin.text.sessions import Session, Turn


def session_examples(
    session: Session,
    *,
    contact: str | None,
    budget: int,
    count: Callable[[str], int] = len,
) -> list[dict]:
    """The examples of one session, in order; field order matches the documented format."""
    return [ex for _, ex in split_session(session, contact=contact, budget=budget, count=count)]


def split_session(
    session: Session,
    *,
    contact: str | None,
    budget: int,
    count: Callable[[str], int] = len,
    val_block: Callable[[int], bool] = lambda b: False,
    block: int = 8,
    group: bool = False,
) -> list[tuple[bool, dict]]:
    """``(in val, example)`` for each reply of mine in the session, in order.

    Examples go to val in blocks of ``block`` consecutive replies (``val_block(b)`` for block
    ``b``), so a chat of a few long sessions still gets a val split of a measurable size. A train
    example's context starts after the last val block before it: no val turn is ever part of a
    training prompt (a val prompt may show earlier train turns, as a real conversation would).
    ``group``: a group chat's examples say so (``"group": true`` and ``"members"``, the labels its
    turns of theirs show, after ``contact``) so the prompt is rendered as a group's
    (:func:`twin.prompt.build_prompt`); a personal chat's have no such fields.
    """
    turns: Sequence[Turn] = session.turns
    all_ctx = [{"role": t.role, "text": t.text} for t in turns]
    replies = [
        i
        for i in range(1, len(turns))
        if turns[i].role == "me" and turns[i - 1].role == "them" and turns[i].reply
    ]
    out = []
    start = 0  # first turn a train example may see as context
    for k, i in enumerate(replies):
        val = val_block(k // block)
        lo = 0 if val else start
        ex: dict = {"dialog_id": session.dialog_id, "session": session.id, "contact": contact}
        if group:  # the people whose labels the prompt may show: stop strings, and what style strips
            ex |= {"group": True, "members": list(dict.fromkeys(m for t in turns[lo:i] for m in t.members))}
        ex |= {
            "context": fit_context(all_ctx[lo : i - 1], budget, count),
            "instruction": turns[i - 1].text,
            "response": turns[i].reply,
        }
        out.append((val, ex))
        if val:
            start = i + 1
    return out


def block_id(session_id: str, b: int) -> str:
    """The id a block of a session's examples is hashed by (block 0: the session id itself)."""
    return session_id if b == 0 else f"{session_id}#{b}"


def val_cut(val_fraction: float) -> int:
    """The default split: a block is in val when its hash is below this (``val_fraction`` of 2**64)."""
    return int(val_fraction * 2**64) if val_fraction > 0 else 0


def in_val(session_id: str, val_fraction: float, seed: int = 0) -> bool:
    """Deterministic split by session: a hash of the id, not a random draw, so reruns agree."""
    return val_fraction > 0 and session_hash(session_id, seed) / 2**64 < val_fraction


def session_hash(session_id: str, seed: int = 0) -> int:
    """A stable 64-bit hash of a session id (salted with ``seed``)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{session_id}".encode(), digest_size=8).digest(), "big")


def choose_val_cut(
    blocks: Sequence[tuple[int, int]], val_fraction: float, min_examples: int, max_share: float
) -> int:
    """The hash cut that gives val at least ``min_examples`` examples where the data allows.

    ``blocks`` are ``(hash, examples)``. The default cut (``val_fraction``) stands when it already
    gives enough; otherwise blocks join val in hash order (deterministic: a rerun agrees) until it
    has ``min_examples``, but never more than ``max_share`` of all examples (past the first block,
    so a tiny chat still gets one) and never every block (train keeps at least one).
    """
    default = val_cut(val_fraction)
    if val_fraction <= 0 or len(blocks) < 2:
        return default
    total = sum(n for _, n in blocks)
    if sum(n for h, n in blocks if h < default) >= min_examples:
        return default
    cut, have = default, 0
    for h, n in sorted(blocks)[:-1]:
        if have and (have >= min_examples or have + n > max_share * total):
            break
        have += n
        cut = max(cut, h + 1)
    return cut
