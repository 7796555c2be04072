"""report.html: self-contained, every section present, chat text escaped."""

from __future__ import annotations

import base64
import re

import pytest

from twin.eval.report import SECTIONS, write_report
from twin.eval.run import EvalConfig, summarize

ROWS = [
    {
        "context": [{"role": "them", "text": "hi"}],
        "contact": "Alice",
        "message": "see you <b>later</b>?",
        "real": "see you soon 🙂",
        "base": "the the the",
        "twin": "see you soon",
    },
    {
        "context": [],
        "contact": None,
        "message": "как дела?",
        "real": "норм, а ты?",
        "base": "",
        "twin": "норм",
    },
    {
        "context": [],
        "contact": None,
        "message": "thanks!",
        "real": "see you",
        "base": "ok",
        "twin": "see you 🙂",
    },
]


_SHARE = {"share": 0.5, "low": 0.2, "high": 0.8, "n": 3, "mean_probability": 0.5}
AUTHORSHIP = {
    "status": "ok",
    "meaningful": True,
    "accuracy": {"balanced": 0.9, "low": 0.85, "high": 0.95},
    "train": {"owner_messages": 100, "contact_messages": 120, "minimum": 50},
    "real": {**_SHARE, "share": 0.9, "low": 0.7, "high": 1.0},
    "base": {**_SHARE, "share": 0.1, "low": 0.0, "high": 0.3},
    "twin": _SHARE,
}


def _result(rows=ROWS):
    loss = {"loss": 2.0, "perplexity": 7.389, "tokens": 10, "examples": len(rows)}
    return {
        "run": "demo",
        "adapter": "a",
        "base": "b",
        "template": "plain-v1",
        "val_file": "v",
        "examples": len(rows),
        "config": EvalConfig().model_dump(mode="json"),
        "loss": {"base": {**loss, "loss": 3.0}, "twin": loss},
        **summarize(rows),
        "train_metrics": {"val_loss": 1.5},
        "authorship": AUTHORSHIP,
    }


@pytest.mark.slow
def test_report_has_every_section_and_inline_plots(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("step,train_loss,val_loss\n1,3.0,\n2,2.5,2.7\n3,2.0,\n", encoding="utf-8")
    path = write_report(_result(), ROWS, tmp_path / "report.html", metrics_csv=csv)
    page = path.read_text(encoding="utf-8")
    for sid, _title in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    # plots: loss, authorship, overlap, lengths, emoji/language, pet phrases, training curve
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 7
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    # self-contained: nothing fetched from elsewhere, no scripts
    assert "<script" not in page and 'src="http' not in page and "<link" not in page
    # chat text is escaped, and every sample row appears with all four columns
    assert "see you &lt;b&gt;later&lt;/b&gt;?" in page and "<b>later</b>" not in page
    samples = page.split('<section id="samples">')[1]
    assert samples.count("<tr>") == 1 + len(ROWS)
    assert "норм, а ты?" in samples and "the the the" in samples and "(empty)" in samples
    # authorship: one sentence comparing twin and base, and the per-reply score in the table
    section = page.split('<section id="authorship">')[1].split("</section>")[0]
    assert (
        "takes 50% of the twin&#x27;s replies for yours and 10% of the base model&#x27;s: the twin is more like you than the base model, but not clearly"
        in section
    )
    rows_scored = [{**ROWS[0], "authorship": {"real": 0.91, "base": 0.12, "twin": 0.77}}]
    scored = write_report(_result(), rows_scored, tmp_path / "s.html").read_text(encoding="utf-8")
    assert "P(you) 0.77" in scored and "P(you) 0.12" in scored and "P(you)" not in samples
    # the pet phrase of the real replies is listed
    assert "see you" in page.split('<section id="pet-phrases">')[1].split("</section>")[0]


def test_training_metrics_that_are_dicts_read_as_words_not_python(tmp_path):
    kept = {"adapter": "best", "step": 360, "last_val_loss": 1.627164, "stopped_early": True}
    metrics = {"val_loss": 1.5, "kept": kept, "plan": {"steps": 600, "reason": "capped at 600"}}
    page = write_report({**_result(), "train_metrics": metrics}, [], tmp_path / "r.html").read_text()
    section = page.split('<section id="training">')[1].split("</section>")[0]
    assert "adapter best, step 360, last_val_loss 1.627, stopped_early True" in section
    assert "steps 600, reason capped at 600" in section and "{" not in section


def test_a_huge_pasted_message_is_clipped_in_the_side_by_side(tmp_path):
    huge = "x" * 200_000
    rows = [{"context": [{"role": "them", "text": huge}], "contact": None, "message": huge, "real": huge,
             "base": "b", "twin": "c"}]  # fmt: skip
    page = write_report(_result(rows), rows, tmp_path / "r.html").read_text()
    assert "x" * 2001 not in page and page.count("(+198,0") == 3  # message, context, real reply


@pytest.mark.slow
def test_report_sections_say_why_when_empty(tmp_path):
    rows = [{"context": [], "contact": None, "message": "m", "real": "a", "base": "b", "twin": "c"}]
    page = write_report({**_result(rows), "train_metrics": {}}, [], tmp_path / "r.html").read_text()
    assert "No phrase occurs" in page
    few = {
        "status": "too_little_data",
        "train": {"owner_messages": 12, "contact_messages": 80, "minimum": 50},
    }
    few_page = write_report({**_result(rows), "authorship": few}, [], tmp_path / "f.html").read_text()
    section = few_page.split('<section id="authorship">')[1].split("</section>")[0]
    assert "Too little data" in section and "12 messages of yours" in section and "<img" not in section
    assert "No training metrics found" in page
    assert "No samples requested" in page
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page


def test_summarize_scores_each_side():
    s = summarize(ROWS)
    assert s["overlap"]["twin"]["rouge1"] > s["overlap"]["base"]["rouge1"]
    assert s["style"]["real"]["emoji_rate"] == 1 / 3
    assert s["lengths"]["base"] == [11, 0, 2]
    assert s["pet_phrases"][0]["phrase"] == "see you"
    assert s["pet_phrases"][0]["real"] == 2 / 3


def _headline_result(**authorship):
    a = {
        **AUTHORSHIP,
        "verifier_ok": True,
        "enough_examples": True,
        "real": {**_SHARE, "share": 0.98, "low": 0.96, "high": 1.0, "n": 200},
        "base": {**_SHARE, "share": 0.31, "low": 0.25, "high": 0.38, "n": 200},
        "twin": {**_SHARE, "share": 0.86, "low": 0.81, "high": 0.9, "n": 200},
        "twin_minus_base": {"share": 0.55, "low": 0.47, "high": 0.62, "n": 200},
        **authorship,
    }
    return {**_result(), "authorship": a, "contacts": {"count": 22, "max_share": 0.07}}


def test_report_opens_with_the_answer_and_its_numbers(tmp_path):
    from twin.eval.verdict import acceptance_rate, headline
    from twin.feedback import acceptance

    r = _headline_result()
    want = (
        'Judged "you" by a style verifier: your real replies 98%, the twin 86%, the base model 31% '
        "(twin - base +55 points, 95% interval +47 to +62, over 200 held-out prompts from 22 contacts)."
    )
    assert headline(r) == want
    for spread, said in (
        ({"count": 13, "groups": 1}, "from 12 contacts and 1 group)."),
        ({"count": 2, "groups": 2}, "from 2 groups)."),
        ({"count": 1}, "from 1 contact)."),
    ):
        assert headline({**r, "contacts": spread}).endswith(said)  # a group is not a contact
    r["blind"] = {"rounds": 10, "rate": 0.4, "low": 0.17, "high": 0.69, "twin_picked": 4, "real_picked": 6}
    r["blind"] |= {"unsure": 0, "median_seconds": 3.0}
    assert headline(r, 0.35).endswith(
        "; blind test: you took the twin for yourself in 40% of 10 rounds; drafts: 35% sent unchanged."
    )
    assert acceptance_rate(r) is None
    # the drafts' feedback records as twin/feedback.py summarizes them: 7 of 20 sent unchanged
    records = [
        {"ts": "2026-12-01T10:00:00Z", "outcome": "unchanged" if i < 7 else "edited", "edit_distance": i}
        for i in range(20)
    ]
    r["acceptance"] = acceptance(records)
    assert acceptance_rate(r) == 0.35
    page = write_report(r, ROWS, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "drafts: 35% sent unchanged." in page
    first = page.index('<p class="answer"')
    assert first < page.index("<section")  # before every section
    assert "your real replies 98%, the twin 86%, the base model 31%" in page[first:]


def test_small_val_says_so_and_prints_no_interval(tmp_path):
    from twin.eval.verdict import headline

    small = {**_SHARE, "n": 3}
    r = _headline_result(enough_examples=False, meaningful=False, real=small, base=small, twin=small)
    text = headline(r)
    assert text.startswith("Too little held-out data to judge: only 3 of your replies")
    assert "interval" not in text and "%" not in text
    r["authorship"]["val_examples"] = 359  # val was large enough: only --max-examples was too small
    assert headline(r).startswith("Too few prompts scored to judge: 3 of the 359 in val.jsonl")
    assert "--max-examples" in headline(r) and "interval" not in headline(r)
    page = write_report(r, ROWS, tmp_path / "r.html").read_text(encoding="utf-8")
    section = page[page.index('id="authorship"') : page.index('id="overlap"')]
    assert "Too few prompts scored" in section
    assert "95% interval" not in section and "<img" not in section and "meaningful" not in section


def test_a_phrase_the_plot_font_cannot_draw_is_labelled_by_its_table_row(recwarn):
    """Sinhala and emoji pet phrases: the plot labels them by number (the report's table numbers its
    rows) instead of drawing boxes with one warning per missing glyph; drawable ones keep their text."""
    from twin.eval import plots

    phrases = [{"phrase": p, "count": 3, "real": 0.5, "base": 0.1, "twin": 0.4}
               for p in ("see you", "හරි හරි", "ok 🫠🫠", "до встречи")]  # fmt: skip
    labels = [plots._tick_label(i, p["phrase"]) for i, p in enumerate(phrases, 1)]
    assert labels == ["1. see you", "2.", "3.", "4. до встречи"]
    img = plots.pet_phrases_plot(phrases)
    assert img.startswith('<img alt="plot" src="data:image/png;base64,')
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
