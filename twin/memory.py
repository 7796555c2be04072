"""Memory: the owner's own past answers, retrieved for a prompt with BM25 (``bm25s``).

A memory is a directory (``memory/`` beside ``train.jsonl``, copied into the adapter directory)
holding the past exchanges of the scrubbed train split — ``pairs.jsonl``: one
``{"session", "chat", "contact", "them", "me"}`` per train example (their message, my reply; ``chat``
is the dialog id) — and a BM25
index over their messages (``bm25/``, bm25s' own files), plus ``memory.json`` recording the
digest of the train file it was built from and how its words were cut (:data:`TOKENS`), so a stale
index is rebuilt.

:meth:`Memory.retrieve` returns the ``k`` past exchanges whose message is most similar to the new
one (BM25 over lowercased word tokens, only exchanges sharing at least one word), never one from
the ``session`` being answered (so a training example never sees its own reply), and each distinct
exchange once. Its **scope** decides whose exchanges: ``contact`` (the default) only the same
chat's, so one person's chats never reach a prompt written for another; ``all`` (an explicit
choice, ``--memory-scope all``) everyone's, the same chat's first. The same chat is the same dialog
id when the caller knows it (train and eval do), else the same name and kind (a group called "Anna"
is not the person Anna; two people of one name are one chat to a caller that knows only the name, as
the server's ``contact``). Train records the scope in
``twin.json``; eval and serve read it from there. Train, eval and serve all retrieve here and render
through ``twin.prompt.render_memory``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError
from twin.fileio import atomic_dir, atomic_write_json, atomic_write_jsonl, iter_jsonl
from twin.text.words import words

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta

log = logging.getLogger(__name__)

MEMORY_DIR = "memory"
PAIRS_FILE = "pairs.jsonl"
INDEX_DIR = "bm25"
META_FILE = "memory.json"
SCOPES = ("contact", "all")  # whose past exchanges a prompt may see: the same contact's, or anyone's
DEFAULT_SCOPE = "contact"  # also for adapters trained before the scope was recorded
MAX_CHARS = 200  # each remembered message is cut to this many characters in the prompt
FORMAT = 2  # 2: pairs carry their chat's dialog id; an older index is rebuilt
# How the index's words were cut (twin/text/words.py); an index cut otherwise is rebuilt. Before
# "words-v2", re's \w split Sinhala or Hindi words at every vowel sign.
TOKENS = "words-v2"
ATTACH_BAR_FROM = 2048  # examples from which attach() shows a bar (eval's 200 take well under a second)


def tokens(text: str) -> list[str]:
    """Lowercased word tokens in any script (:func:`twin.text.words.words`)."""
    return words(text)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rstrip() + "…"


def _read_pairs(train_file: Path) -> list[dict]:
    pairs = []
    for lineno, ex in iter_jsonl(train_file, hint="re-run `twin prepare`"):
        try:
            pairs.append(
                {
                    "session": ex.get("session"),
                    "chat": ex.get("dialog_id"),
                    "contact": ex.get("contact"),
                    "them": _cut(ex["instruction"]),
                    "me": _cut(ex["response"]),
                }
                | ({"group": True} if ex.get("group") else {})  # their text is labelled per person
            )
        except (AttributeError, KeyError, TypeError):
            raise TwinError(f"{train_file}:{lineno}: not a prepared example; re-run `twin prepare`") from None
    return pairs


def build_memory(data_dir: str | Path, train_file: str = "train.jsonl") -> Path:
    """Build ``<data_dir>/memory/`` from the train split (written beside, swapped in whole)."""
    import bm25s

    data = Path(data_dir)
    src = data / train_file
    if not src.is_file():
        raise TwinError(f"{src}: not found; run `twin prepare` first (or pass --data DIR)")
    pairs = _read_pairs(src)
    if not pairs:
        raise TwinError(f"{src}: no examples to remember; export more chats or check `twin prepare`")
    out = data / MEMORY_DIR
    with atomic_dir(out) as tmp:
        retriever = bm25s.BM25()
        retriever.index([tokens(p["them"]) for p in pairs], show_progress=False)
        retriever.save(str(tmp / INDEX_DIR), show_progress=False)
        atomic_write_jsonl(tmp / PAIRS_FILE, pairs)
        meta = {"format": FORMAT, "tokens": TOKENS, "train_digest": _digest(src), "pairs": len(pairs)}
        atomic_write_json(tmp / META_FILE, meta)
    log.info("memory: %d past exchanges indexed -> %s", len(pairs), out)
    return out


def ensure_memory(data_dir: str | Path, train_file: str = "train.jsonl") -> Path:
    """``<data_dir>/memory/``, built now if missing or older than the train file."""
    data = Path(data_dir)
    out = data / MEMORY_DIR
    try:
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        current = meta.get("format") == FORMAT and meta.get("tokens") == TOKENS
        if current and meta.get("train_digest") == _digest(data / train_file):
            return out
    except (OSError, ValueError):
        pass
    return build_memory(data, train_file)


def copy_memory(src: str | Path, adapter_dir: str | Path) -> Path:
    """Copy a memory directory into an adapter directory (so serving needs nothing else)."""
    dest = Path(adapter_dir) / MEMORY_DIR
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


@dataclass
class Memory:
    """An opened memory: the past exchanges and their BM25 index."""

    pairs: list[dict]
    retriever: Any
    by_session: dict[str, list[int]] = field(default_factory=dict)
    k: int = 0  # how many exchanges a prompt gets (set by :func:`adapter_memory`)
    scope: str = DEFAULT_SCOPE  # "contact": only the same contact's exchanges; "all": anyone's

    @classmethod
    def open(cls, path: str | Path) -> Memory:
        import bm25s

        p = Path(path)
        try:
            pairs = [pair for _, pair in iter_jsonl(p / PAIRS_FILE)]
            retriever = bm25s.BM25.load(str(p / INDEX_DIR))
        except (OSError, ValueError, TwinError) as e:
            raise TwinError(
                f"{p}: memory missing or unreadable ({e.__class__.__name__}); re-run `twin prepare`"
            ) from None
        by_session: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            by_session.setdefault(str(pair.get("session")), []).append(i)
        return cls(pairs, retriever, by_session)

    def retrieve(
        self,
        message: str,
        k: int,
        *,
        contact: str | None = None,
        session: str | None = None,
        chat: Any = None,
        group: bool = False,
    ) -> list[dict]:
        """The ``k`` most similar past exchanges within the scope (same chat first), never from ``session``.

        The same chat: dialog id ``chat`` when given, else the name ``contact`` of the same kind (group or not).
        """
        import numpy as np

        vocab = self.retriever.vocab_dict
        ids = [vocab[t] for t in tokens(message) if t in vocab]
        if k <= 0 or not ids or (self.scope == "contact" and not contact):
            return []  # contact scope without a contact: nobody's exchanges may be shown
        scores = np.asarray(self.retriever.get_scores(ids), dtype=float)
        if session is not None:
            scores[self.by_session.get(str(session), [])] = 0.0
        hits = np.flatnonzero(scores > 0)
        same = np.array([self._same_chat(self.pairs[i], contact, chat, group) for i in hits], dtype=bool)
        if self.scope == "contact":
            hits, same = hits[same], same[same]
        order = hits[np.lexsort((hits, -scores[hits], ~same))] if len(hits) else hits
        chosen: list[dict] = []
        seen: set[tuple[str, str]] = set()
        for i in order:
            pair = self.pairs[int(i)]
            key = (pair["them"], pair["me"])
            if key not in seen:
                seen.add(key)
                chosen.append(
                    {"contact": pair.get("contact"), "them": pair["them"], "me": pair["me"]}
                    | ({"group": True} if pair.get("group") else {})
                )
                if len(chosen) == k:
                    break
        return chosen

    @staticmethod
    def _same_chat(pair: dict, contact: str | None, chat: Any, group: bool) -> bool:
        if chat is not None and pair.get("chat") is not None:
            return pair["chat"] == chat
        return pair.get("contact") == contact and bool(pair.get("group")) == group

    def attach(self, examples: Sequence[dict], k: int) -> list[dict]:
        """Copies of ``examples`` with ``memory``: what each one's prompt remembers."""
        from tqdm.auto import tqdm

        # a bar when there are many: `twin train --memory 3` on a 90,000-message account's 13,855
        # train examples took 14.6 s with no line
        bar = tqdm(examples, desc=f"memory: {k} past exchanges per example", unit="ex", leave=False,
                   disable=len(examples) < ATTACH_BAR_FROM or None)  # fmt: skip
        return [
            {
                **ex,
                "memory": self.retrieve(
                    ex["instruction"],
                    k,
                    contact=ex.get("contact"),
                    session=ex.get("session"),
                    chat=ex.get("dialog_id"),
                    group=bool(ex.get("group")),
                ),
            }
            for ex in bar
        ]


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise TwinError(f"--memory-scope {scope!r}: choose contact (the default: each contact's own) or all")
    return scope


def check_memory_applies(adapter_dir: str | Path, meta: AdapterMeta, k: int | None) -> None:
    """``--memory k`` (k > 0) only for an adapter trained with memory: its template has no place else."""
    if k and meta.memory is None:
        raise TwinError(
            f"{adapter_dir}: adapter trained without memory, so --memory {k} cannot apply; "
            "retrain it with `twin train --memory K` or drop --memory"
        )


def adapter_memory(adapter_dir: str | Path, meta: AdapterMeta, k: int | None = None) -> Memory | None:
    """The memory an adapter was trained with (``twin.json`` → ``memory``), ``k`` overriding its count.

    Its scope is the recorded one (``memory.scope``; adapters from before it was recorded: ``contact``).

    None for an adapter trained without memory; asking such an adapter for memory (``k`` > 0) is
    a TwinError, since its template has no place for it.
    """
    rec = meta.memory
    if rec is None:
        check_memory_applies(adapter_dir, meta, k)
        return None
    memory = Memory.open(Path(adapter_dir) / rec.dir)
    memory.k = rec.k if k is None else k
    memory.scope = rec.scope
    return memory
