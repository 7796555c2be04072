"""``report.html``: one self-contained page (plots inlined as base64 PNG, no external files or
scripts), readable offline and safe to mail to yourself. Every section is always present; a
section with nothing to show says why.

This module lays the page out: each section's table and note around its plot (:mod:`twin.eval.plots`)
and the sentences of :mod:`twin.eval.verdict`.
"""

from __future__ import annotations

import contextlib
import csv
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin.eval import plots
from twin.eval.blind import blind_section
from twin.eval.metrics import GENERATED, SIDES, script_columns
from twin.eval.plots import SIDE_LABELS
from twin.eval.verdict import acceptance_rate, authorship_sentence, headline, too_few
from twin.fileio import atomic_write_text
from twin.prompt import render_context

# (id, title) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("loss", "Loss and perplexity on held-out replies"),
    ("authorship", "Is it you? Authorship score"),
    ("overlap", "Overlap with your real replies (BLEU-4, ROUGE)"),
    ("lengths", "Reply length distribution"),
    ("emoji-language", "Emoji and language"),
    ("pet-phrases", "Your pet phrases"),
    ("training", "Training curve"),
    ("blind", "Is it me? The blind test"),
    ("acceptance", "Your edits of the drafts"),
    ("samples", "Side by side: their message | your real reply | base | twin"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.35em .6em;vertical-align:top;text-align:left}
th{background:#f6f6f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.samples td{white-space:pre-wrap;max-width:260px;font-size:.92em} .muted{color:#777}
details summary{cursor:pointer;color:#555} img{max-width:100%}
.better{color:#1a7f37;font-weight:600} p.answer{font-size:1.15em;font-weight:600}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "inf"
        return f"{x:.{digits}f}"
    return _esc(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for v in r:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_fmt(v)}</td>' if num else f"<td>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><tr>{head}</tr>{''.join(body)}</table>"


def _section_summary(r: dict) -> str:
    lb, lt = r["loss"]["base"], r["loss"]["twin"]
    ob, ot = r["overlap"]["base"], r["overlap"]["twin"]
    rows = [
        ["run", _esc(r["run"])],
        ["adapter", _esc(r["adapter"])],
        ["base model", _esc(r["base"])],
        ["prompt template", _esc(r["template"])],
        ["memory: past exchanges per prompt", (r.get("memory") or {}).get("k", 0)],
        ["memory: whose exchanges (scope)", _esc((r.get("memory") or {}).get("scope") or "-")],
        ["mean prompt tokens", (r.get("prompt_tokens") or {}).get("mean", float("nan"))],
        ["held-out examples", r["examples"]],
        ["val file", _esc(r["val_file"])],
        ["seed / temperature", _esc(f"{r['config']['seed']} / {r['config']['temperature']}")],
    ]
    verdict = (
        f"The twin's loss on your real replies is <b>{_fmt(lt['loss'])}</b> vs the base's "
        f"<b>{_fmt(lb['loss'])}</b> (perplexity {_fmt(lt['perplexity'], 1)} vs {_fmt(lb['perplexity'], 1)}); "
        f"BLEU-4 {_fmt(ot['bleu4'], 2)} vs {_fmt(ob['bleu4'], 2)}, ROUGE-L {_fmt(ot['rougeL'])} vs {_fmt(ob['rougeL'])}."
    )
    if r.get("authorship"):
        verdict += " " + _esc(authorship_sentence(r["authorship"]))
    return f"<p>{verdict}</p>" + _table(["", ""], rows)


def _section_loss(r: dict) -> str:
    lb, lt = r["loss"]["base"], r["loss"]["twin"]
    rows = [
        [SIDE_LABELS[s], d["loss"], d["perplexity"], d["tokens"], d["examples"]]
        for s, d in (("base", lb), ("twin", lt))
    ]
    note = (
        '<p class="muted">Token-weighted cross-entropy of your real replies (and the end-of-message token) '
        "given the same prompt the twin was trained with; perplexity = exp(loss).</p>"
    )
    table = _table(["model", "loss", "perplexity", "reply tokens", "examples"], rows)
    return note + table + plots.loss_plot(r["loss"])


def _section_authorship(r: dict) -> str:
    a = r.get("authorship") or {"status": "missing"}
    text = f"<p>{_esc(authorship_sentence(a))}</p>"
    if a.get("status") != "ok" or too_few(a):
        return text
    rows = [
        [
            SIDE_LABELS[s],
            a[s]["share"],
            _esc(f"{a[s]['low']:.2f}-{a[s]['high']:.2f}"),
            a[s]["mean_probability"],
        ]
        for s in SIDES
    ]
    if a.get("twin_minus_base"):
        d = a["twin_minus_base"]
        rows.append(["twin - base, same prompts", d["share"], _esc(f"{d['low']:.2f}-{d['high']:.2f}"), ""])
    if a.get("twin_minus_real"):
        d = a["twin_minus_real"]
        rows.append(
            [
                "twin - your real replies, same prompts",
                d["share"],
                _esc(f"{d['low']:.2f}-{d['high']:.2f}"),
                "",
            ]
        )
    acc = a["accuracy"]
    note = (
        '<p class="muted">Verifier: character 1-4-gram TF-IDF + class-balanced logistic regression, trained '
        f"on train.jsonl only ({a['train']['owner_messages']} of your messages, "
        f"{a['train']['contact_messages']} of your contacts'). Its balanced accuracy on real held-out "
        f"messages: {acc['balanced']:.3f} ({acc['low']:.3f}-{acc['high']:.3f}); a reply counts as yours at "
        "P(you) &ge; 0.5. Intervals: Wilson score for each share, Newcombe's paired score interval for "
        "the paired differences.</p>"
    )
    header = ["replies", 'share judged "you"', "95% interval", "mean P(you)"]
    return text + note + _table(header, rows) + _auc_table(a.get("auc") or {}) + plots.authorship_plot(a)


def _auc_table(auc: dict) -> str:
    if not auc:
        return ""
    rows = [
        [f"your real replies vs the {SIDE_LABELS[side]}", d["auc"], _esc(f"{d['low']:.2f}-{d['high']:.2f}")]
        for side, d in ((k.removeprefix("real_vs_"), v) for k, v in auc.items())
    ]
    note = (
        '<p class="muted">How well the verifier\'s P(you) tells your real replies from generated ones '
        "(ROC AUC over the same prompts; 0.5 = indistinguishable, 1.0 = always told apart; interval: "
        "bootstrap over prompts).</p>"
    )
    return note + _table(["pair", "ROC AUC", "95% interval"], rows)


def _section_overlap(r: dict) -> str:
    keys = [
        ("bleu4", "BLEU-4 (0-100)"),
        ("rouge1", "ROUGE-1 F1"),
        ("rouge2", "ROUGE-2 F1"),
        ("rougeL", "ROUGE-L F1"),
    ]
    rows = [[label, *(r["overlap"][s][k] for s in GENERATED)] for k, label in keys]
    note = (
        '<p class="muted">Generated replies scored against what you really wrote: corpus BLEU-4 '
        "(sacrebleu) and mean ROUGE F1 over replies (Unicode word tokens, so Cyrillic counts). "
        "Chat replies are short and varied: low absolute values are normal, compare base vs twin.</p>"
    )
    return note + _table(["metric", *GENERATED], rows) + plots.overlap_plot(r["overlap"])


def _section_lengths(r: dict) -> str:
    st = r["style"]
    rows = [
        [
            SIDE_LABELS[s],
            st[s]["chars_mean"],
            st[s]["chars_median"],
            st[s]["chars_p90"],
            st[s]["words_mean"],
            st[s]["empty_share"],
        ]
        for s in SIDES
    ]
    header = ["replies", "mean chars", "median chars", "90th pct chars", "mean words", "empty share"]
    return _table(header, rows) + plots.lengths_plot(r["lengths"])


def _section_emoji_language(r: dict) -> str:
    st = r["style"]
    scripts = script_columns(st)
    rows = [
        [
            SIDE_LABELS[s],
            st[s]["emoji_rate"],
            st[s]["emoji_per_reply"],
            *(st[s]["script_share"].get(k, 0.0) for k in scripts),
        ]
        for s in SIDES
    ]
    note = (
        '<p class="muted">Language is told by script: a reply is Cyrillic, Latin, Sinhala ... by the majority '
        'of its letters, "other" when it has none (emoji only, numbers).</p>'
    )
    header = [
        "replies",
        "emoji rate",
        "emoji per reply",
        *(k.capitalize() if k != "other" else k for k in scripts),
    ]
    return note + _table(header, rows) + plots.emoji_language_plot(st, scripts)


def _section_pet_phrases(r: dict) -> str:
    phrases = r["pet_phrases"]
    if not phrases:
        return '<p class="muted">No phrase occurs in two or more of your held-out replies.</p>'
    rows = [
        [i, _esc(p["phrase"]), p["count"], p["real"], p["base"], p["twin"]] for i, p in enumerate(phrases, 1)
    ]
    note = (
        '<p class="muted">Your most frequent 2-3 word phrases (and one-word replies) in the held-out '
        "replies, and how often each side uses them.</p>"
    )
    return (
        note
        + _table(["#", "phrase", "your replies with it", "real share", "base share", "twin share"], rows)
        + plots.pet_phrases_plot(phrases)
    )


def _read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``{column: [(step, value), ...]}`` for every loss-like column of a training metrics.csv."""
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row.get("step") or "nan")
            except ValueError:
                continue
            for k, v in row.items():
                if k and "loss" in k and v not in (None, ""):
                    with contextlib.suppress(ValueError):
                        series.setdefault(k, []).append((step, float(v)))
    return {k: v for k, v in series.items() if v}


def _plain(v: Any) -> str:
    """A nested metric (the step plan, what was kept) as ``key value, ...``: a reader of the report is
    not shown Python's dict syntax (``{'adapter': 'best', ...}``)."""
    if isinstance(v, dict):
        return ", ".join(f"{k} {_plain(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ", ".join(map(_plain, v))
    return "-" if v is None else str(v)


def _section_training(r: dict, metrics_csv: Path | None) -> str:
    final = r.get("train_metrics") or {}
    parts = []
    if final:
        rows = [[_esc(k), v if isinstance(v, int | float) else _esc(_plain(v))] for k, v in final.items()]
        parts.append(_table(["final training metric", "value"], rows))
    series = _read_metrics_csv(metrics_csv) if metrics_csv and metrics_csv.is_file() else {}
    if series:
        parts.append(plots.training_plot(series))
    if not parts:
        where = _esc(metrics_csv) if metrics_csv else "the run directory"
        parts.append(f'<p class="muted">No training metrics found ({where}).</p>')
    return "".join(parts)


# A message pasted whole (a log, an article: 200,000 characters happen) would make a cell, and the
# page, that size; the model saw at most its prompt budget of it anyway.
_CELL_CHARS = 2000


def _clip(text: str) -> str:
    if len(text) <= _CELL_CHARS:
        return text
    return f"{text[:_CELL_CHARS]} … (+{len(text) - _CELL_CHARS:,} characters)"


def _context_html(context: Sequence[dict], contact: str | None, group: bool = False) -> str:
    if not context:
        return ""
    lines = render_context(context, contact, group)  # a group's turns carry their own labels
    return f"<details><summary>context ({len(context)})</summary>{_esc(_clip(lines))}</details>"


def _reply_cell(x: dict, side: str) -> str:
    text = _esc(_clip(x[side])) or '<span class="muted">(empty)</span>'
    score = (x.get("authorship") or {}).get(side)
    return text if score is None else f'{text}<br><span class="muted">P(you) {score:.2f}</span>'


def _section_samples(rows: Sequence[dict]) -> str:
    if not rows:
        return '<p class="muted">No samples requested (--samples 0).</p>'
    table_rows = [
        [
            _context_html(x.get("context") or [], x.get("contact"), bool(x.get("group")))
            + _esc(_clip(x["message"])),
            *(_reply_cell(x, side) for side in SIDES),
        ]
        for x in rows
    ]
    return _table(["their message", "your real reply", "base model", "twin"], table_rows, cls="samples")


def acceptance_section(acc: dict | None) -> str:
    """What you did with ``twin drafts``' suggestions, per week (``eval.json``'s ``acceptance``)."""
    if not acc:
        return (
            "<p>No drafts feedback yet: run <code>twin drafts</code>; what you send after each suggestion "
            "is recorded (scrubbed) in <code>data/feedback/</code> and summed up here.</p>"
        )
    med = acc["median_edit_distance"]
    text = (
        f"You sent {acc['share_unchanged']:.0%} of {acc['n']} suggestions unchanged; the median edit "
        f"distance between a suggestion and what you sent is {_fmt(med, 1) if med is not None else 'n/a'} "
        "characters (lower is better; a rising share unchanged means the twin is getting closer to you)."
    )
    rows = [
        [
            w["week"],
            w["n"],
            w["unchanged"],
            w["edited"],
            w["other"],
            w["none"],
            w["share_unchanged"],
            "" if w["median_edit_distance"] is None else w["median_edit_distance"],
        ]  # fmt: skip
        for w in acc["weeks"]
    ]
    header = ["week", "suggestions", "sent unchanged", "edited", "something else", "nothing",
              "share unchanged", "median edit distance"]  # fmt: skip
    return f"<p>{_esc(text)}</p>" + _table(header, rows)


def render_report(result: dict, samples: Sequence[dict], *, metrics_csv: Path | None = None) -> str:
    """The whole HTML page as a string; it opens with the answer (:func:`headline`)."""
    body = {
        "summary": _section_summary(result),
        "loss": _section_loss(result),
        "authorship": _section_authorship(result),
        "overlap": _section_overlap(result),
        "lengths": _section_lengths(result),
        "emoji-language": _section_emoji_language(result),
        "pet-phrases": _section_pet_phrases(result),
        "training": _section_training(result, metrics_csv),
        "blind": blind_section(result.get("blind"), result["run"]),
        "acceptance": acceptance_section(result.get("acceptance")),
        "samples": _section_samples(samples),
    }
    nav = " · ".join(f'<a href="#{sid}">{_esc(title.split(":")[0])}</a>' for sid, title in SECTIONS)
    sections = "\n".join(
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{body[sid]}</section>' for sid, title in SECTIONS
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>twin eval: {_esc(result['run'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>twin eval: {_esc(result['run'])}</h1>"
        f'<p class="answer" id="answer">{_esc(headline(result, acceptance_rate(result)))}</p>'
        f'<p class="muted">{nav}</p>{sections}'
        '<p class="muted">Generated by <code>twin eval</code>. This page contains your chat text: keep it private.</p>'
        "</body></html>\n"
    )


def write_report(
    result: dict,
    samples: Sequence[dict],
    path: str | os.PathLike,
    *,
    metrics_csv: str | os.PathLike | None = None,
) -> Path:
    """Render and write ``report.html`` atomically; returns its path."""
    p = Path(path)
    atomic_write_text(
        p, render_report(result, samples, metrics_csv=Path(metrics_csv) if metrics_csv else None)
    )
    return p
