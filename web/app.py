"""The twin chat page (Streamlit). Run with `make chat` (or `twin chat --server URL`).

Tab "Chat": you write as the other person ("them"); your twin answers as you ("me"). Tab "Is it
me?": a blind test on the run's ``eval_samples.jsonl``: their message, your real reply and the
twin's (generated live by the server) in random order; you pick yours, results go to
``checkpoints/runs/<run>/blind.jsonl``.

The page talks to a running `twin serve` over HTTP only (it never imports torch or the model code),
so it starts in a second and can sit on another machine than the model. The server configured at
launch (``--server URL`` after ``--`` on the streamlit command line, as `twin chat` passes it, else
``$TWIN_SERVER_URL``) is the only one that ever gets the bearer token (``$TWIN_API_TOKEN``). Another
URL, from the ``?server=`` query parameter or the sidebar, is used only after the user confirms it
on the page, and then without the token.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from twin import no_phone_home
from twin.prompt import group_messages

# Before any library that might talk to the Hugging Face hub is imported: nothing phones home.
no_phone_home(offline=True)

import httpx  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit_chat import message as bubble  # noqa: E402

DEFAULT_SERVER = "http://127.0.0.1:8000"
RUN_SERVER = "start it with `make serve` (or `twin serve --base DIR --adapter DIR`), then reload this page"
RUNS_ENV = "TWIN_RUNS_DIR"  # where the runs are (default checkpoints/runs, relative to the repo root)
BLIND_ROUNDS = 20
# What a server that does not state its caps in /healthz accepts (twin serve's defaults).
DEFAULT_LIMITS = {"max_history": 100, "max_message_chars": 4000, "max_new_tokens": 512,
                  "max_body_bytes": 256 * 1024, "max_contact_chars": 100}  # fmt: skip
URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+$")
PICKS = {"A": "A is mine", "B": "B is mine", "unsure": "Can't tell"}


def _avatar(label: str, color: str) -> str:
    # Inline SVG: streamlit-chat's default avatars are fetched from an external service, and a
    # private chat page should not make requests to third parties.
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="20" '
        f'fill="{color}"/><text x="20" y="25" font-size="13" text-anchor="middle" fill="white" '
        f'font-family="sans-serif">{label}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


AVATAR_ME = _avatar("me", "#4c6ef5")
AVATAR_THEM = _avatar("you", "#868e96")


class ServerError(Exception):
    """A problem to show the user in one plain sentence, with what to do about it."""


def normalize(url: str) -> str:
    return url.strip().rstrip("/")


def launch_server() -> str:
    """The server configured at launch: `twin chat --server` (passed after ``--``), else $TWIN_SERVER_URL."""
    url = None
    if "--server" in sys.argv[:-1]:
        url = sys.argv[sys.argv.index("--server") + 1]
    return normalize(url or os.environ.get("TWIN_SERVER_URL") or DEFAULT_SERVER)


def call(
    server: str,
    method: str,
    path: str,
    payload: dict | None = None,
    *,
    token: str | None,
    timeout: float = 120.0,
) -> dict:
    """One request to the twin server; every failure becomes a :class:`ServerError` saying what to do."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, server + path, json=payload, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise ServerError(
            f"The twin server at {server} did not answer in {timeout:.0f} s; is it overloaded?"
        ) from None
    except httpx.HTTPError:
        raise ServerError(f"Can't reach the twin server at {server}: {RUN_SERVER}.") from None
    if r.status_code == 401:
        raise ServerError(
            "The server refused the token: check TWIN_API_TOKEN and run `make chat` again."
            if token
            else "The server wants a token: set TWIN_API_TOKEN (the server's value) and run `make chat` "
            "again; the page sends it only to the server it was started with."
        )
    if r.status_code == 503:
        wait = r.headers.get("retry-after", "a few")
        raise ServerError(f"The twin is busy with other requests; try again in {wait} s.")
    try:
        data = r.json()
    except ValueError:
        raise ServerError(
            f"{server} answered with something that is not the twin API; check the URL."
        ) from None
    if r.status_code != 200:
        msg = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        raise ServerError(f"The server refused the request ({r.status_code}): {msg or 'unknown error'}.")
    return data


def server_limits(server: str, token: str | None) -> dict:
    """The caps the server states in /healthz (once per server and session), else twin serve's defaults."""
    known = st.session_state.setdefault("limits", {})
    if server not in known:
        try:
            stated = call(server, "GET", "/healthz", token=token, timeout=10).get("limits")
        except ServerError:
            # Not kept: a page opened before `make serve` is up would use the defaults for the rest
            # of the session, and a server with lower caps would refuse every request.
            return DEFAULT_LIMITS
        known[server] = {**DEFAULT_LIMITS, **(stated if isinstance(stated, dict) else {})}
    return known[server]


def fit_request(turns: list[dict], settings: dict, limits: dict, contact: str | None = None) -> dict:
    """A /reply body the server accepts: the last turn is the message, the newest earlier turns that fit."""
    *earlier, last = turns
    cap = int(limits["max_message_chars"])
    if len(last["text"]) > cap:
        raise ServerError(f"That message is {len(last['text'])} characters; the server takes at most {cap}.")
    names = int(limits["max_contact_chars"])
    history = [
        {"role": t["role"], "text": t["text"][:cap], **({"name": t["name"][:names]} if t.get("name") else {})}
        for t in earlier
    ][-int(limits["max_history"]) :]
    payload = {"message": last["text"], "history": history, **settings}
    if "name" in last:  # a group: who wrote each of their messages, as training saw it
        payload |= {"group": True, "name": (last["name"] or "")[:names] or None}
    if "max_new_tokens" in payload:
        payload["max_new_tokens"] = min(payload["max_new_tokens"], int(limits["max_new_tokens"]))
    if contact:
        payload["contact"] = contact[: int(limits["max_contact_chars"])]
    # ensure_ascii over-counts non-ASCII text, so the real body is never larger than measured.
    while history and len(json.dumps(payload).encode()) > int(limits["max_body_bytes"]) - 64:
        history.pop(0)
    return payload


def ask(
    server: str, token: str | None, turns: list[dict], settings: dict, contact: str | None = None
) -> dict:
    """The twin's reply to the last turn (theirs), with the newest earlier turns the server accepts."""
    payload = fit_request(turns, settings, server_limits(server, token), contact)
    return call(server, "POST", "/reply", payload, token=token)


def choose_server(launch: str) -> str:
    """The server to talk to: the launch one, or another URL the user typed/linked AND confirmed here."""
    state = st.session_state
    confirmed = state.setdefault("confirmed_servers", [])
    start = normalize(st.query_params.get("server") or launch)
    requested = normalize(st.text_input("Server URL", value=start, key="server")) or launch
    if requested == launch or requested in confirmed:
        return requested
    if not URL.match(requested):
        st.error(f"That is not a server URL (http://HOST:PORT); still talking to `{launch}`.")
        return launch
    # The URL is checked above (no spaces, brackets or backticks): safe inside a markdown code span.
    st.warning(
        f"This page was started with `{launch}`. Talk to `{requested}` instead? Your chat goes to it "
        "only if you confirm, and the API token never does."
    )
    if st.button(f"Use `{requested}` (without the token)", key="confirm_server"):
        confirmed.append(requested)
        st.rerun()
    return launch


def sidebar(launch: str) -> dict:
    """The sidebar's choices: server, token for it, generation settings, contact, chat actions."""
    server = choose_server(launch)
    token = os.environ.get("TWIN_API_TOKEN") if server == launch else None
    st.caption(f"Talking to `{server}`" + (" with the API token" if token else ""))
    adapters: list[str] = []
    default = None
    try:
        info = call(server, "GET", "/adapters", token=token, timeout=10)
        adapters = [a["name"] for a in info["adapters"]]
        default = info["default"]
    except ServerError as e:
        st.error(str(e))
    adapter = st.selectbox(
        "Adapter",
        adapters,
        index=adapters.index(default) if default in adapters else (0 if adapters else None),
        key="adapter",
    )
    contact = st.text_input("Their name (optional)", key="contact", help="Who you are playing.")
    temperature = st.slider("Temperature", 0.0, 1.5, 0.7, 0.05, key="temperature")
    top_p = st.slider("Top-p", 0.05, 1.0, 0.9, 0.05, key="top_p")
    max_tokens = st.slider("Max tokens", 8, 512, 64, 8, key="max_tokens")
    clear = st.button("Clear chat", width="stretch")
    regenerate = st.button("Regenerate last reply", width="stretch")
    settings = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_tokens}
    if adapter:
        settings["adapter"] = adapter
    return {"server": server, "token": token, "settings": settings, "contact": (contact or "").strip() or None,
            "clear": clear, "regenerate": regenerate}  # fmt: skip


def chat_tab(side: dict) -> None:
    state = st.session_state
    st.title("Chat with your twin")
    st.caption("You write as the other person; the twin replies the way you would.")
    shown = st.container()
    text = st.chat_input("Write as them; your twin answers as you")
    if side["clear"]:
        state.turns, state.error = [], None
    pending = False
    if text and text.strip():
        state.turns.append({"role": "them", "text": text.strip()})
        pending = True
    if side["regenerate"] and state.turns:
        if state.turns[-1]["role"] == "me":
            state.turns.pop()
        pending = bool(state.turns)
    if pending:
        try:
            with st.spinner("your twin is typing..."):
                out = ask(side["server"], side["token"], state.turns, side["settings"], side["contact"])
            stats = {"tokens_per_s": out["tokens_per_s"], "tokens": out["usage"]["completion_tokens"],
                     "latency_s": out["latency_s"], "adapter": out["adapter"]}  # fmt: skip
            state.turns.append({"role": "me", "text": out["reply"], "stats": stats})
            state.error = None
        except ServerError as e:
            state.error = str(e)
    with shown:
        show_turns(state.turns)
        if state.error:
            st.error(state.error)


def show_turns(turns: list[dict]) -> None:
    for i, turn in enumerate(turns):
        mine = turn["role"] == "me"
        # is_user puts a bubble on the right: the person typing here is "them".
        bubble(turn["text"] or "(empty reply)", is_user=not mine, key=f"turn-{i}",
               logo=AVATAR_ME if mine else AVATAR_THEM)  # fmt: skip
        if mine and turn.get("stats"):
            s = turn["stats"]
            st.caption(
                f"{s['tokens_per_s']:.1f} tokens/s · {s['tokens']} tokens · {s['latency_s']:.2f} s · {s['adapter']}"
            )


# ---------------------------------------------------------------- "Is it me?" (blind test)


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV) or "checkpoints/runs")


def read_samples(path: Path) -> list[dict]:
    """The rows of a run's eval_samples.jsonl (context, contact, message, real, base, twin, session)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ServerError(f"{path}:{n} is not JSON; run `make eval` again to rewrite it.") from None
        if not isinstance(row, dict) or not isinstance(row.get("message"), str) or not row.get("real"):
            raise ServerError(f"{path}:{n} has no message/real reply; run `make eval` again to rewrite it.")
        rows.append(row)
    return rows


def new_round(samples: list[dict], index: int, ask_twin: dict) -> dict:
    """One round: the prompt's id, the real reply and the twin's live one on random sides."""
    row = samples[index]
    context = [{"role": t["role"], "text": t["text"]} for t in row.get("context") or []]
    turns = [*context, {"role": "them", "text": row["message"]}]
    if row.get("group") and row.get("members"):
        turns = group_messages(turns, row["members"])
    out = ask(ask_twin["server"], ask_twin["token"], turns, ask_twin["settings"], row.get("contact"))
    real = random.choice("AB")
    replies = {real: row["real"], ("B" if real == "A" else "A"): out["reply"]}
    return {"prompt": index, "session": row.get("session"), "real": real, "replies": replies,
            "adapter": out["adapter"], "shown_at": time.monotonic()}  # fmt: skip


def record_pick(path: Path, run: str, rnd: dict, pick: str) -> None:
    """Append one result to blind.jsonl: ids, sides and timing only, never chat text."""
    row = {"run": run, "prompt": rnd["prompt"], "session": rnd["session"], "adapter": rnd["adapter"],
           "real": rnd["real"], "pick": pick, "seconds": round(time.monotonic() - rnd["shown_at"], 2),
           "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())  # one write: a line is never half there
    finally:
        os.close(fd)


def show_prompt(row: dict) -> None:
    """The earlier turns and their message, as plain text (never rendered as markdown)."""
    them = row.get("contact") or "Them"
    with st.container(border=True):
        for t in row.get("context") or []:
            st.text(f"{'Me' if t['role'] == 'me' else them}: {t['text']}")
        st.text(f"{them}: {row['message']}")


def blind_start(run: str, samples: list[dict]) -> None:
    state = st.session_state
    rounds = st.number_input("Rounds", 1, len(samples), min(BLIND_ROUNDS, len(samples)), key="blind_rounds")
    if st.button("Start the blind test", key="blind_start"):
        order = random.sample(range(len(samples)), int(rounds))
        state.blind = {"run": run, "queue": order, "picks": [], "round": None, "error": None}
        st.rerun()


def blind_round(blind: dict, samples: list[dict], ask_twin: dict, out: Path) -> None:
    """Show the current round (asking the server for the twin's reply first) and record the pick."""
    if blind["round"] is None:
        try:
            with st.spinner("the twin is writing its reply..."):
                blind["round"] = new_round(samples, blind["queue"][0], ask_twin)
        except ServerError as e:
            st.error(str(e))
            st.button("Try again", key="blind_retry")
            return
    rnd = blind["round"]
    done, total = len(blind["picks"]), len(blind["picks"]) + len(blind["queue"])
    st.progress(done / total, text=f"Round {done + 1} of {total}")
    show_prompt(samples[rnd["prompt"]])
    st.markdown("**Which reply did you write?**")
    for col, side in zip(st.columns(2), "AB", strict=True):
        with col.container(border=True):
            st.markdown(f"**{side}**")
            st.text(rnd["replies"][side] or "(empty reply)")
    cols = st.columns(3)
    for col, (pick, label) in zip(cols, PICKS.items(), strict=True):
        if col.button(label, key=f"blind_pick_{pick}", width="stretch"):
            record_pick(out, blind["run"], rnd, pick)
            blind["picks"].append(
                "unsure" if pick == "unsure" else ("real" if pick == rnd["real"] else "twin")
            )
            blind["queue"].pop(0)
            blind["round"] = None
            st.rerun()


def blind_summary(blind: dict, out: Path) -> None:
    picks = blind["picks"]
    st.success(
        f"Done: {len(picks)} rounds. You took the twin's reply for yours {picks.count('twin')} times, "
        f"your own {picks.count('real')} times, and could not tell {picks.count('unsure')} times."
    )
    st.caption(f"Saved to {out}. `make eval RUN={blind['run']}` reports the rate with its 95% interval.")
    if st.button("New blind test", key="blind_again"):
        st.session_state.blind = None
        st.rerun()


def blind_tab(side: dict) -> None:
    st.header("Is it me?")
    st.caption(
        "Their message and two replies: yours and the twin's, in random order. Pick the one you wrote."
    )
    root = runs_dir()
    runs = sorted(p.parent.name for p in root.glob("*/eval_samples.jsonl"))
    if not runs:
        st.info(f"No evaluated run in {root}: run `make eval` first (it writes eval_samples.jsonl).")
        return
    adapter = side["settings"].get("adapter")
    run = st.selectbox("Run", runs, index=runs.index(adapter) if adapter in runs else 0, key="blind_run")
    try:
        samples = read_samples(root / run / "eval_samples.jsonl")
    except ServerError as e:
        st.error(str(e))
        return
    if not samples:
        st.info(f"{root / run / 'eval_samples.jsonl'} is empty: run `make eval` first.")
        return
    blind = st.session_state.get("blind")
    if not blind or blind["run"] != run:
        blind_start(run, samples)
    elif blind["queue"]:
        ask_twin = {"server": side["server"], "token": side["token"], "settings": side["settings"]}
        blind_round(blind, samples, ask_twin, root / run / "blind.jsonl")
    else:
        blind_summary(blind, root / run / "blind.jsonl")


def main() -> None:
    st.set_page_config(page_title="twin", page_icon="💬")
    state = st.session_state
    state.setdefault("turns", [])
    state.setdefault("error", None)
    launch = launch_server()
    with st.sidebar:
        st.header("twin")
        side = sidebar(launch)
    chat, blind = st.tabs(["Chat", "Is it me?"])
    with chat:
        chat_tab(side)
    with blind:
        blind_tab(side)


main()
