"""The eval's answer in words: the report's first sentence (:func:`headline`), what the authorship
block means (:func:`authorship_sentence`) and the drafts acceptance rate, from ``eval.json``'s numbers.

Plain text (no HTML): ``twin eval`` prints the headline, the report escapes and shows it.
"""

from __future__ import annotations


def acceptance_rate(result: dict) -> float | None:
    """The share of ``twin drafts``' suggestions the owner sent unchanged (eval.json's ``acceptance``,
    written from ``twin/feedback.py``); None when there is no feedback yet."""
    acc = result.get("acceptance")
    if isinstance(acc, dict) and isinstance(acc.get("share_unchanged"), int | float):
        return float(acc["share_unchanged"])
    return None


def too_few(a: dict) -> bool:
    """Too few scored prompts for a share to mean anything (older eval.json files: enough)."""
    return a.get("status") == "ok" and not a.get("enough_examples", True)


def _too_few_sentence(a: dict) -> str:
    n = (a.get("real") or {}).get("n", 0)
    val = a.get("val_examples") or n
    if val >= a.get("min_examples", 30):  # val has enough: only the sample asked for was too small
        return (
            f"Too few prompts scored to judge: {n} of the {val} in val.jsonl; at least "
            f'{a.get("min_examples", 30)} are needed before a share judged "you" means anything (so none is '
            "shown). Run `twin eval` again with a larger --max-examples."
        )
    return (
        f"Too little held-out data to judge: only {n} of your replies are in val.jsonl, and at least "
        f'{a.get("min_examples", 30)} are needed before a share judged "you" means anything (so none is '
        "shown). Export more of your chats (a longer history, more contacts) and run `twin prepare`, "
        "`twin train` and `twin eval` again."
    )


def headline(result: dict, acceptance: float | None = None) -> str:
    """The report's first sentence, the answer with its numbers: the share judged "you" of real / twin /
    base replies, the blind-test rate when there is one, and the drafts ``acceptance`` rate (the share
    sent unchanged) when there is one (:func:`acceptance_rate`)."""
    a = result.get("authorship") or {"status": "missing"}
    if a.get("status") != "ok" or not a.get("verifier_ok", a.get("meaningful")) or too_few(a):
        parts = [authorship_sentence(a).rstrip(".")]
    else:
        d = a.get("twin_minus_base") or {}
        who = _from_chats(result.get("contacts") or {})
        parts = [
            f'Judged "you" by a style verifier: your real replies {a["real"]["share"]:.0%}, the twin '
            f"{a['twin']['share']:.0%}, the base model {a['base']['share']:.0%} (twin - base "
            f"{100 * d.get('share', float('nan')):+.0f} points, 95% interval {100 * d.get('low', float('nan')):+.0f} to "
            f"{100 * d.get('high', float('nan')):+.0f}, over {a['twin']['n']} held-out prompts{who})"
        ]
        if _above_real(a):  # the first line read alone must not promise "more you than you"
            parts.append("the twin above your own replies is the score's ceiling, not more you than you")
    blind = result.get("blind")
    if blind and blind.get("rounds"):
        parts.append(
            f"blind test: you took the twin for yourself in {blind['rate']:.0%} of {blind['rounds']} rounds"
        )
    if acceptance is not None:
        parts.append(f"drafts: {acceptance:.0%} sent unchanged")
    return "; ".join(parts) + "."


def _from_chats(spread: dict) -> str:
    """' from 12 contacts and 1 group' (a group is not a contact), '' when not counted."""
    n, groups = spread.get("count") or 0, spread.get("groups") or 0
    parts = [f"{n - groups} contact{'s' if n - groups != 1 else ''}"] if n > groups else []
    if groups:
        parts.append(f"{groups} group{'s' if groups != 1 else ''}")
    return f" from {' and '.join(parts)}" if parts else ""


def authorship_sentence(a: dict) -> str:
    """One sentence saying what the authorship block means (plain text)."""
    status = a.get("status")
    if status == "too_little_data":
        t = a["train"]
        return (
            f"Too little data for an authorship score: train has {t['owner_messages']} messages of yours and "
            f"{t['contact_messages']} of your contacts; the verifier needs at least {t['minimum']} of each."
        )
    if status != "ok":
        return f"No authorship score ({status}): it needs train.jsonl and val.jsonl from `twin prepare`."
    acc = a["accuracy"]
    if not a.get("verifier_ok", a["meaningful"]):
        sentence = (
            f"The verifier tells your held-out messages from your contacts' only {acc['balanced']:.0%} of the "
            f"time (balanced accuracy, 95% interval {acc['low']:.0%}-{acc['high']:.0%}; chance is 50%), so the "
            "authorship score is not meaningful for this data."
        )
        # a small chat: say what to do about it (the verifier learns from train, judges on val)
        return sentence + (" " + _too_few_sentence(a) if too_few(a) else "")
    if too_few(a):
        return _too_few_sentence(a)
    real, base, twin = a["real"], a["base"], a["twin"]
    diff = a.get("twin_minus_base") or {"share": twin["share"] - base["share"], "low": float("nan")}
    # points, as in the headline: "+84%" of a share reads as a relative change
    span = f"paired difference {100 * diff['share']:+.0f} points" + (
        f", 95% interval {100 * diff['low']:+.0f} to {100 * diff['high']:+.0f}" if "high" in diff else ""
    )
    if diff["low"] > 0:
        verdict = f"clearly more like you than the base model ({span})"
    elif twin["share"] > base["share"]:
        verdict = f"more like you than the base model, but not clearly ({span})"
    else:
        verdict = f"no more like you than the base model ({span})"
    sentence = (
        f"A classifier that tells your messages from your contacts' ({acc['balanced']:.0%} balanced accuracy "
        f"on held-out messages) takes {twin['share']:.0%} of the twin's replies for yours and "
        f"{base['share']:.0%} of the base model's: the twin is {verdict}; your real replies score "
        f"{real['share']:.0%}."
    )
    auc = a.get("auc") or {}
    if "real_vs_twin" in auc and "real_vs_base" in auc:
        sentence += (
            f" Told apart from your real replies by its score with ROC AUC {auc['real_vs_twin']['auc']:.2f} "
            f"(twin) and {auc['real_vs_base']['auc']:.2f} (base); 0.5 = indistinguishable."
        )
    return sentence + _above_real_sentence(a)


def _above_real(a: dict) -> bool:
    """The twin clearly judged "you" more often than the real replies, in the shares or the scores."""
    d = a.get("twin_minus_real") or {}
    auc = (a.get("auc") or {}).get("real_vs_twin") or {}
    return d.get("low", 0) > 0 or auc.get("high", 1) < 0.5


def _above_real_sentence(a: dict) -> str:
    """When the twin is judged "you" clearly more often than the real replies (the paired twin - real
    interval above 0), or scored more like the owner than they are (AUC real vs twin, interval under
    0.5), what that means.

    Seen on generated exports whose owner has a voice of their own (bench/RESULTS.md, section
    realchat): the verifier knows the owner by their commonest habits, which the twin repeats more
    consistently than the owner, and it misses mostly short real replies, which carry few habits.
    Read as "more you than you", the headline would promise what it does not measure.
    """
    if not _above_real(a):
        return ""
    d = a.get("twin_minus_real") or {}
    auc = (a.get("auc") or {}).get("real_vs_twin") or {}
    if d.get("low", 0) > 0:
        sentence = (
            f' The twin is judged "you" more often than your own replies ({100 * d["share"]:+.0f} points, 95% '
            f"interval {100 * d['low']:+.0f} to {100 * d['high']:+.0f})"
        )
    else:  # the same finding seen in the scores rather than the shares
        sentence = (
            f" The verifier scores the twin's replies as more like you than your own (ROC AUC {auc['auc']:.2f}, "
            f"95% interval {auc['low']:.2f}-{auc['high']:.2f}, under 0.5)"
        )
    sentence += (
        ": the score's ceiling, not a twin more you than you — it repeats the habits the verifier knows "
        "you by more consistently than you do"
    )
    lengths = a.get("real_lengths") or {}
    missed, taken = lengths.get("missed_chars"), lengths.get("judged_you_chars")
    if missed is not None and taken is not None and missed < taken:
        sentence += (
            f", and the replies of yours it missed are short ones (median {missed:.0f} characters, against "
            f"{taken:.0f} for those it took for yours), which carry few habits to know anyone by"
        )
    return sentence + "."
