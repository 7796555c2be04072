"""The report's plots, each an inline ``<img>`` (base64 PNG): nothing external to load, so the page
reads offline.

matplotlib's object API (``Figure``, no pyplot), so nothing touches a GUI backend. Each function takes
the numbers of one ``eval.json`` block and draws them; the tables and words around them are
:mod:`twin.eval.report`'s.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Sequence
from typing import Any

from twin.eval.metrics import SIDES

SIDE_COLORS = {"real": "#4c72b0", "base": "#999999", "twin": "#dd8452"}
SIDE_LABELS = {"real": "your real replies", "base": "base model", "twin": "twin"}
_SCRIPT_COLORS = {"cyrillic": "#55a868", "latin": "#8172b2", "other": "#cccccc"}
_MORE_SCRIPT_COLORS = ("#dd8452", "#c44e52", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")  # sinhala, ...


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(w: float = 7, h: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _bars(ax: Any, groups: Sequence[str], series: dict[str, Sequence[float]]) -> None:
    n = len(series)
    width = 0.8 / max(n, 1)
    for k, (side, vals) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, vals, width, label=SIDE_LABELS[side], color=SIDE_COLORS[side])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.legend(fontsize=8)


def loss_plot(loss: dict) -> str:
    """Base vs twin mean cross-entropy (a NaN loss drawn as 0)."""
    fig = _figure(5, 2.8)
    ax = fig.add_subplot()
    vals = [loss["base"]["loss"], loss["twin"]["loss"]]
    ax.bar(
        [SIDE_LABELS["base"], SIDE_LABELS["twin"]],
        [0 if math.isnan(v) else v for v in vals],
        color=[SIDE_COLORS["base"], SIDE_COLORS["twin"]],
    )
    ax.set_ylabel("mean cross-entropy (nats/token)")
    ax.set_title("lower is better")
    return _png(fig)


def authorship_plot(a: dict) -> str:
    """Each side's share judged "you", with its 95% interval."""
    fig = _figure(6, 2.6)
    ax = fig.add_subplot()
    shares = [a[s]["share"] for s in SIDES]
    errs = [[a[s]["share"] - a[s]["low"] for s in SIDES], [a[s]["high"] - a[s]["share"] for s in SIDES]]
    labels, colors = [SIDE_LABELS[s] for s in SIDES], [SIDE_COLORS[s] for s in SIDES]
    ax.barh(labels, shares, xerr=errs, color=colors, capsize=4)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel('share of replies judged "you" (95% interval)')
    return _png(fig)


def overlap_plot(overlap: dict) -> str:
    """BLEU-4 (scaled to 0-1) and ROUGE F1s, base vs twin."""
    fig = _figure(6, 2.8)
    ax = fig.add_subplot()
    series = {
        s: [overlap[s]["bleu4"] / 100, overlap[s]["rouge1"], overlap[s]["rouge2"], overlap[s]["rougeL"]]
        for s in ("base", "twin")
    }
    _bars(ax, ["BLEU-4/100", "ROUGE-1", "ROUGE-2", "ROUGE-L"], series)
    ax.set_ylim(0, max(0.05, *(v for vs in series.values() for v in vs)) * 1.15)
    return _png(fig)


def lengths_plot(lengths: dict[str, list[int]]) -> str:
    """Histograms of reply length in characters, one outline per side (20 shared bins)."""
    top = max([1, *(v for s in SIDES for v in lengths[s])])
    bins = [round(top * i / 20) for i in range(21)]
    bins = sorted(set(bins)) if len(set(bins)) > 1 else [0, 1]
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    for s in SIDES:
        if lengths[s]:
            ax.hist(
                lengths[s],
                bins=bins,
                histtype="step",
                linewidth=2,
                label=SIDE_LABELS[s],
                color=SIDE_COLORS[s],
            )
    ax.set_xlabel("reply length (characters)")
    ax.set_ylabel("replies")
    ax.legend(fontsize=8)
    return _png(fig)


def emoji_language_plot(style: dict, scripts: list[str]) -> str:
    """Two panels: the share of replies with an emoji, and each side's replies stacked by script."""
    fig = _figure(8, 2.8)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = [SIDE_LABELS[s] for s in SIDES]
    ax1.bar(labels, [style[s]["emoji_rate"] for s in SIDES], color=[SIDE_COLORS[s] for s in SIDES])
    ax1.set_ylim(0, max(0.05, *(style[s]["emoji_rate"] for s in SIDES)) * 1.15)
    ax1.set_title("share of replies with an emoji", fontsize=9)
    ax1.tick_params(axis="x", labelsize=7)
    bottom = [0.0] * len(SIDES)
    extra = iter(_MORE_SCRIPT_COLORS * len(scripts))
    for k in scripts:
        vals = [style[s]["script_share"].get(k, 0.0) for s in SIDES]
        ax2.bar(labels, vals, bottom=bottom, label=k, color=_SCRIPT_COLORS.get(k) or next(extra))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax2.set_title("script of each reply", fontsize=9)
    ax2.tick_params(axis="x", labelsize=7)
    ax2.legend(fontsize=7)
    return _png(fig)


def pet_phrases_plot(phrases: list[dict]) -> str:
    """For each pet phrase, the share of each side's replies using it (horizontal bars)."""
    fig = _figure(7, 0.4 * len(phrases) + 1.2)
    ax = fig.add_subplot()
    n = len(phrases)
    for k, s in enumerate(SIDES):
        ys = [i + (k - 1) * 0.27 for i in range(n)]
        ax.barh(ys, [p[s] for p in phrases], 0.27, label=SIDE_LABELS[s], color=SIDE_COLORS[s])
    ax.set_yticks(range(n))
    ax.set_yticklabels([_tick_label(i + 1, p["phrase"]) for i, p in enumerate(phrases)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of replies using the phrase")
    ax.legend(fontsize=7)
    return _png(fig)


def _tick_label(number: int, phrase: str) -> str:
    """``"1. phrase"``, or only ``"1."`` (its row in the report's table) when the plot's font has no
    glyph for a character of it: Sinhala, most emoji and many other scripts are not in the font
    matplotlib ships with, which would draw boxes and warn once per missing glyph."""
    return f"{number}. {phrase}" if _drawable(phrase) else f"{number}."


def _drawable(text: str) -> bool:
    return all(ord(c) in _plot_font_chars() or c.isspace() for c in text)


@functools.cache
def _plot_font_chars() -> frozenset[int]:
    """The code points the font of the plots' text (matplotlib's default sans-serif) can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def training_plot(series: dict[str, list[tuple[float, float]]]) -> str:
    """Every loss column of the training log against the step."""
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    for k, pts in sorted(series.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, marker="." if len(pts) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return _png(fig)
