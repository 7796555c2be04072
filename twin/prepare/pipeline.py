"""``run_prepare``: data/raw -> data/processed/{train,val}.jsonl + stats.json.

Per dialog (in a process pool, one dialog per task, both cores busy): read and validate the raw
records, split sessions, scrub each session's messages in order (an answer with its question in
view), merge turns, build examples, pick the split by a hash
of each block of a session's examples. The parent streams the results, in dialog order, into temp files beside the
outputs and renames them only when every dialog succeeded: a bad line anywhere leaves
``data/processed`` exactly as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from array import array
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from twin.account import account_regions
from twin.errors import TwinError
from twin.fileio import atomic_open, iter_jsonl
from twin.memory import ensure_memory
from twin.prepare.config import PrepareConfig
from twin.prepare.formats import CONVERTERS, dataset_info
from twin.prepare.session_examples import block_id, choose_val_cut, session_hash, split_session, val_cut
from twin.records import dialog_files, validate_record
from twin.text.normalize import clean_message
from twin.text.scrub import TYPES, Scrubber, infer_regions
from twin.text.sessions import build_sessions

__all__ = ["PrepareConfig", "run_prepare", "process_dialog"]

log = logging.getLogger(__name__)

# Below this much raw data a process pool costs more than it saves.
_POOL_MIN_BYTES = 4 << 20

# A pool worker's settings and token counter, set once per worker process by _init_worker: a
# ProcessPoolExecutor initializer has nowhere else to leave them, and loading a tokenizer per task
# would cost more than the work. The parent process never fills it (it passes cfg and count).
_worker: dict[str, Any] = {}


def load_counter(tokenizer_dir: str) -> Callable[[str], int]:
    """Token counter of a Hugging Face tokenizer dir (memoised: a turn is counted once per dialog)."""
    p = Path(tokenizer_dir)
    if not p.is_dir():
        raise TwinError(f"{p}: tokenizer directory not found; pass the base model dir to --tokenizer")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(p))
    except Exception as e:  # noqa: BLE001 - any load failure is a user-fixable path problem
        raise TwinError(
            f"{p}: cannot load a tokenizer ({type(e).__name__}); it needs tokenizer.json or "
            "tokenizer_config.json, or drop --tokenizer to budget context in characters"
        ) from None
    cache: dict[str, int] = {}

    def count(text: str) -> int:
        n = cache.get(text)
        if n is None:
            n = len(tok(text, add_special_tokens=False)["input_ids"])
            if len(cache) > 200_000:
                cache.clear()
            cache[text] = n
        return n

    return count


def _init_worker(cfg_json: dict) -> None:
    cfg = PrepareConfig.model_validate({k: v for k, v in cfg_json.items() if k != "context_unit"})
    _worker["cfg"] = cfg
    _worker["count"] = load_counter(cfg.tokenizer) if cfg.tokenizer else len


def dumps_line(obj: Any) -> str:
    """One JSON line (orjson: several times faster than the stdlib on a million lines)."""
    return orjson.dumps(obj).decode()


def read_records(path: Path) -> list[dict]:
    """Every record of a dialog file; a bad line raises TwinError naming ``file:line``.

    The common case (a well-formed record) is checked inline; anything unusual goes through
    :func:`validate_record` for the precise message.
    """
    rows = []
    for lineno, obj in iter_jsonl(path, hint="fix or delete the line, or re-export the dialog"):
        if (
            type(obj) is dict
            and type(obj.get("out")) is bool
            and obj.get("dialog_id") is not None
            and obj.get("id") is not None
            and type(d := obj.get("date")) is str
            and len(d) == 20
            and d[-1] == "Z"
            and type(obj.get("text")) is str
        ):
            try:
                datetime.fromisoformat(d[:-1])
            except ValueError:
                validate_record(obj, f"{path}:{lineno}")  # raises with the precise message
            rows.append(obj)
        else:
            rows.append(validate_record(obj, f"{path}:{lineno}"))
    return rows


def process_dialog(
    path: str | Path,
    cfg: PrepareConfig | None = None,
    count: Callable[[str], int] | None = None,
    cut: int | None = None,
) -> dict:
    """One dialog file -> its serialized examples (train / val) and its counts.

    A block of a session's examples is in val when its hash is below ``cut`` (default: the
    ``val_fraction`` of all hashes; ``run_prepare`` raises it when val would be too small).
    """
    cfg = cfg or _worker["cfg"]
    count = count or _worker.get("count", len)
    cut = val_cut(cfg.val_fraction) if cut is None else cut
    records = read_records(Path(path))
    scrubber = _dialog_scrubber(records, cfg)
    contact = next((r["dialog_name"] for r in reversed(records) if r.get("dialog_name")), None)
    contact = clean_message(contact or "") or None  # as the server cleans a request's
    if scrubber is not None and contact:
        contact = scrubber.scrub(contact)  # "Oleg +7 916 ...": a contact's name is text like any other
    sessions = build_sessions(records, cfg.gap_hours, scrubber=scrubber)
    group = any("sender" in r for r in records)  # the export names who wrote what only in groups
    res = _empty_result(records, len(sessions))
    buf: dict[str, dict[str, list[str]]] = {k: {"train": [], "val": []} for k in ("main", *cfg.format)}
    for s in sessions:
        res["turns"] += len(s.turns)
        hashes: dict[int, int] = {}

        def in_val(b: int, sid: str = s.id, hashes: dict = hashes) -> bool:
            hashes[b] = session_hash(block_id(sid, b), cfg.seed)
            return hashes[b] < cut

        exs = split_session(
            s, contact=contact, budget=cfg.context_budget, count=count, val_block=in_val, block=cfg.val_block,
            group=group,
        )  # fmt: skip
        if exs:
            _add_session(res, buf, exs, hashes, cfg, count)
    # one string per output file: pickling a few big strings is far cheaper than many small ones
    res["text"] = {k: {sp: "".join(line + "\n" for line in v[sp]) for sp in v} for k, v in buf.items()}
    res["pii"] = dict(scrubber.counts) if scrubber else {}
    res["regions"] = scrubber.regions if scrubber else []
    return res


def _dialog_scrubber(records: list[dict], cfg: PrepareConfig) -> Scrubber | None:
    """The dialog's scrubber: ``--region``, the owner's own phone region, then those its text points to."""
    if not cfg.scrub:
        return None
    extra = [*cfg.account_regions, *infer_regions(r["text"] for r in records)]
    return Scrubber(cfg.region, extra=dict.fromkeys(extra))


def _empty_result(records: list[dict], n_sessions: int) -> dict[str, Any]:
    return {
        "messages": len(records),
        "messages_no_text": sum(1 for r in records if not clean_message(r["text"])),  # as turns see text
        "messages_forwarded": sum(1 for r in records if r.get("forwarded")),
        "messages_mine": sum(1 for r in records if r["out"]),
        "sessions": n_sessions,
        "turns": 0,
        "examples": 0,
        "val_sessions": 0,
        "val_blocks": 0,
        "sessions_with_examples": 0,
        "blocks": [],  # (hash, examples) of every block of examples: run_prepare picks the cut from them
        "split": {"train": 0, "val": 0},
        # lengths as int arrays: cheap to send from a worker to the parent
        "lengths": {
            k: array("i") for k in ("instruction_chars", "response_chars", "context_turns", "context_size")
        },
    }


def _add_session(
    res: dict,
    buf: dict,
    exs: list[tuple[bool, dict]],
    hashes: dict[int, int],
    cfg: PrepareConfig,
    count: Callable[[str], int],
) -> None:
    """One session's examples into their split's buffers, with their lengths."""
    res["sessions_with_examples"] += 1
    res["val_sessions"] += any(val for val, _ in exs)
    for b, h in sorted(hashes.items()):
        n = min(cfg.val_block, len(exs) - b * cfg.val_block)
        res["blocks"].append((h, n))
        res["val_blocks"] += exs[b * cfg.val_block][0]
    L = res["lengths"]
    for val, ex in exs:
        split = "val" if val else "train"
        res["split"][split] += 1
        buf["main"][split].append(dumps_line(ex))
        for fmt in cfg.format:
            buf[fmt][split].append(dumps_line(CONVERTERS[fmt](ex)))
        L["instruction_chars"].append(len(ex["instruction"]))
        L["response_chars"].append(len(ex["response"]))
        L["context_turns"].append(len(ex["context"]))
        L["context_size"].append(sum(count(t["text"]) + 1 for t in ex["context"]))
    res["examples"] += len(exs)


def _percentiles(values: list[int]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    n = len(v)

    def pct(p: float) -> int:
        return v[min(n - 1, int(p / 100 * n))]

    return {
        "n": n,
        "mean": round(sum(v) / n, 1),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": v[-1],
    }


def run_prepare(cfg: PrepareConfig) -> dict:
    """Run the stage; returns the stats written to ``<out>/stats.json``."""
    raw, out = Path(cfg.raw), Path(cfg.out)
    files = dialog_files(raw)
    if not files:
        raise TwinError(
            f"{raw}: no dialog files (<source>/<dialog_id>.jsonl) found; "
            "run `make export-desktop FILE=...` or `make export-telegram` first"
        )
    if cfg.scrub:  # a bad account file fails here, before any work
        owner = [r for r in account_regions(raw) if r not in cfg.account_regions]
        cfg = cfg.model_copy(update={"account_regions": [*cfg.account_regions, *owner]})
    else:
        log.warning("--no-scrub: PII (e-mails, phones, cards, passwords...) stays in the training data")
    # a bad tokenizer dir fails here, in one line, before any work
    count = load_counter(cfg.tokenizer) if cfg.tokenizer else len
    results = _process_all(cfg, files, count)
    counts, pii, lengths, blocks = _totals(results)
    if counts["examples"] == 0:
        raise TwinError(
            f"{raw}: no training examples: no message of yours answers one of theirs "
            f"({counts['messages']} messages in {len(files)} dialogs); check `out` in the raw records "
            "or pass --me to the import"
        )
    cut = choose_val_cut(blocks, cfg.val_fraction, cfg.min_val_examples, cfg.max_val_share)
    if cut != val_cut(cfg.val_fraction):  # val too small at val_fraction: the same work, a wider cut
        log.info(
            "prepare: val_fraction %.3g gives %d val examples (under %d); widening the val split",
            cfg.val_fraction,
            counts["val"],
            cfg.min_val_examples,
        )
        results = _process_all(cfg, files, count, cut, announce=False)
        counts, pii, lengths, blocks = _totals(results)
    stats = _stats(cfg, len(files), counts, pii, lengths)
    _write_outputs(out, cfg, results, stats)
    # both session counts: the summary table's "sessions" is all of them (7,491 against this line's
    # 5,256 on a 90,000-message account read as two answers to one question)
    log.info(
        "prepare: %d examples (%d train / %d val) from %d of %d sessions (the rest hold no reply of yours) -> %s",
        counts["examples"],
        counts["train"],
        counts["val"],
        counts["sessions_with_examples"],
        counts["sessions"],
        out,
    )
    if stats["val"]["weak"]:
        log.warning("prepare: %s", stats["val"]["warning"])
    return stats


def _process_all(
    cfg: PrepareConfig,
    files: list[Path],
    count: Callable[[str], int],
    cut: int | None = None,
    *,
    announce: bool = True,
) -> list[dict]:
    """Every dialog's result, in file order: in a process pool when the data is big enough.

    ``announce``: log what is read (once a run: not again when the val split is widened)."""
    total_bytes = sum(p.stat().st_size for p in files)
    workers = max(1, min(cfg.workers or (os.cpu_count() or 1), len(files)))
    use_pool = workers > 1 and total_bytes >= _POOL_MIN_BYTES
    log.log(
        logging.INFO if announce else logging.DEBUG,
        "prepare: %d dialog files (%.1f MB) with %d process(es)",
        len(files),
        total_bytes / 1e6,
        workers if use_pool else 1,
    )
    from tqdm import tqdm

    with tqdm(total=len(files), unit="dialog", desc="prepare", disable=None, leave=False) as bar:
        if not use_pool:
            results = []
            for f in files:
                results.append(process_dialog(f, cfg, count, cut))
                bar.update(1)
            return results
        return _process_in_pool(cfg, files, workers, bar, cut)


def _process_in_pool(
    cfg: PrepareConfig, files: list[Path], workers: int, bar: Any, cut: int | None
) -> list[dict]:
    import functools
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork is fastest, but forking a process whose native thread pools (torch's OpenMP,
    # tokenizers' rayon) may hold locks can deadlock a child: then start clean interpreters
    safe_fork = not any(m in sys.modules for m in ("torch", "tokenizers"))
    ctx = mp.get_context("fork" if safe_fork else "spawn")
    chunk = max(1, len(files) // (workers * 32))
    cfg_json = cfg.model_dump(mode="json")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg_json,)) as pool:
        results = []
        try:
            for res in pool.map(functools.partial(process_dialog, cut=cut), files, chunksize=chunk):
                results.append(res)
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a bad line: don't finish the rest
            raise
    return results


_SUMMED = (
    "messages",
    "messages_no_text",
    "messages_forwarded",
    "messages_mine",
    "sessions",
    "turns",
    "examples",
    "val_sessions",
    "val_blocks",
    "sessions_with_examples",
)

# Below this many train examples (replies of yours) prepare warns that the twin will be weak.
WEAK_TRAIN_EXAMPLES = 1000


def _totals(results: list[dict]) -> tuple[Counter, Counter, dict[str, list[int]], list[tuple[int, int]]]:
    """Counts, PII hits, lengths and ``(hash, examples)`` of every block, summed over every dialog."""
    counts: Counter = Counter()
    pii: Counter = Counter()
    lengths: dict[str, list[int]] = {}
    blocks: list[tuple[int, int]] = []
    for res in results:
        for key in _SUMMED:
            counts[key] += res[key]
        for split in ("train", "val"):
            counts[split] += res["split"][split]
        counts["dialogs_with_examples"] += res["examples"] > 0
        counts["val_contacts"] += res["split"]["val"] > 0
        pii.update(res["pii"])
        counts.update(f"region:{r}" for r in res.get("regions", ()))
        for k, v in res["lengths"].items():
            lengths.setdefault(k, []).extend(v)
        blocks.extend(res["blocks"])
    return counts, pii, lengths, blocks


def _few_val(val: int, minimum: int, val_fraction: float) -> str:
    """The warning's part about a small val split; none at all is not "a small difference" but no
    measurement: train keeps at least one block, so replies in a single block leave val empty."""
    if val == 0 and val_fraction <= 0:
        return "no val prompts (val_fraction 0): `twin eval` will have nothing to measure"
    if val == 0:
        return (
            "no val prompts: all your replies are in one stretch of one conversation, which train keeps, "
            "so `twin eval` will have nothing to measure; export a longer history"
        )
    return f"{val} val prompt{'s' if val > 1 else ''} (under {minimum}) can only show large differences"


def _val_record(cfg: PrepareConfig, counts: Counter) -> dict:
    """stats.json "val": how big the val split is, whether it is enough to measure, and the warning."""
    train, val = counts["train"], counts["val"]
    enough = val >= cfg.min_val_examples
    weak = train < WEAK_TRAIN_EXAMPLES or (cfg.val_fraction > 0 and not enough)
    warning = None
    if weak:
        parts = [
            f"a chat this small makes a weak twin: {counts['examples']} replies of yours ({train} train, "
            f"{val} val) from {counts['messages']} messages"
        ]
        if train < WEAK_TRAIN_EXAMPLES:
            parts.append(f"under {WEAK_TRAIN_EXAMPLES} to train on; a few thousand make a better twin")
        if not enough:
            parts.append(_few_val(val, cfg.min_val_examples, cfg.val_fraction))
        warning = "; ".join(parts)
    return {
        "examples": val,
        "sessions": counts["val_sessions"],
        "blocks": counts["val_blocks"],
        "dialogs": counts["val_contacts"],
        "min_examples": cfg.min_val_examples,
        "enough": enough,
        "weak": weak,
        "warning": warning,
    }


def _stats(cfg: PrepareConfig, n_files: int, counts: Counter, pii: Counter, lengths: dict) -> dict:
    """What ``stats.json`` holds: the config, counts, the val split's size, PII hits per type (never
    values), lengths."""
    keys = ("dialogs_with_examples", "messages", "messages_mine", "messages_no_text", "messages_forwarded")
    stats = {
        "config": cfg.model_dump(mode="json"),
        "counts": {
            "dialogs": n_files,
            **{k: counts[k] for k in (*keys, "sessions", "turns", "examples", "train", "val")},
            "sessions_with_examples": counts["sessions_with_examples"],
            "val_sessions": counts["val_sessions"],
        },
        "val": _val_record(cfg, counts),
        "pii": {t: pii.get(t, 0) for t in TYPES} if cfg.scrub else {},
        # phone regions the scrubber used, with the number of dialogs each was used in
        "phone_regions": {k[7:]: v for k, v in counts.most_common() if k.startswith("region:")},
        "lengths": {k: _percentiles(v) for k, v in lengths.items()},
    }
    stats["lengths"].setdefault("context_size", {})["unit"] = cfg.context_unit
    return stats


def _write_outputs(out: Path, cfg: PrepareConfig, results: list[dict], stats: dict) -> None:
    """Every output is a temp file until all are complete; an error deletes them all."""
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for key in ("main", *cfg.format):
            for split in ("train", "val"):
                name = f"{split}.jsonl" if key == "main" else f"{split}.{key}.jsonl"
                f = stack.enter_context(atomic_open(out / name))
                for res in results:
                    f.write(res["text"][key][split])
        if cfg.format:
            f = stack.enter_context(atomic_open(out / "dataset_info.json"))
            json.dump(dataset_info(cfg.format), f, indent=2)
        f = stack.enter_context(atomic_open(out / "stats.json"))
        json.dump(stats, f, ensure_ascii=False, indent=2)
        f.write("\n")
    # Files of formats not asked for this time are stale.
    for fmt in CONVERTERS:
        if fmt not in cfg.format:
            for split in ("train", "val"):
                with contextlib.suppress(FileNotFoundError):
                    (out / f"{split}.{fmt}.jsonl").unlink()
    ensure_memory(out)  # the BM25 index of past exchanges for `--memory K` (twin/memory.py)
