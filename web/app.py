"""The twin chat page (Streamlit). Run with `make chat` (or `twin chat --server URL`).

You write as the other person ("them"); your twin answers as you ("me"). The page talks to a
running `twin serve` over HTTP only (it never imports torch or the model code), so it starts in
a second and can sit on another machine than the model. Server URL: the sidebar, or the
``?server=`` query parameter, or ``--server URL`` after ``--`` on the streamlit command line, or
``$TWIN_SERVER_URL``. A bearer token for a protected server comes from ``$TWIN_API_TOKEN``.
"""

from __future__ import annotations

import base64
import os
import sys

import httpx
import streamlit as st
from streamlit_chat import message as bubble

DEFAULT_SERVER = "http://127.0.0.1:8000"
RUN_SERVER = "start it with `make serve` (or `twin serve --base DIR --adapter DIR`), then reload this page"


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


def default_server() -> str:
    url = st.query_params.get("server")
    if not url and "--server" in sys.argv[:-1]:
        url = sys.argv[sys.argv.index("--server") + 1]
    return (url or os.environ.get("TWIN_SERVER_URL") or DEFAULT_SERVER).rstrip("/")


def call(server: str, method: str, path: str, payload: dict | None = None, timeout: float = 120.0) -> dict:
    """One request to the twin server; every failure becomes a :class:`ServerError` saying what to do."""
    token = os.environ.get("TWIN_API_TOKEN")
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
            "The server wants a token: set TWIN_API_TOKEN (the server's value) and run `make chat` again."
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


def ask(server: str, turns: list[dict], settings: dict) -> dict:
    """The twin's reply to the last turn (theirs), with everything before it as history."""
    *history, last = turns
    payload = {
        "message": last["text"],
        "history": [{"role": t["role"], "text": t["text"]} for t in history],
        **settings,
    }
    return call(server, "POST", "/reply", payload)


def main() -> None:
    st.set_page_config(page_title="twin", page_icon="💬")
    state = st.session_state
    state.setdefault("turns", [])
    state.setdefault("error", None)

    with st.sidebar:
        st.header("twin")
        server = st.text_input("Server URL", value=default_server(), key="server").rstrip("/")
        adapters: list[str] = []
        default = None
        try:
            info = call(server, "GET", "/adapters", timeout=10)
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
    if contact and contact.strip():
        settings["contact"] = contact.strip()

    if clear:
        state.turns, state.error = [], None
    text = st.chat_input("Write as them; your twin answers as you")
    pending = False
    if text and text.strip():
        state.turns.append({"role": "them", "text": text.strip()})
        pending = True
    if regenerate and state.turns:
        if state.turns[-1]["role"] == "me":
            state.turns.pop()
        pending = bool(state.turns)
    if pending:
        try:
            with st.spinner("your twin is typing..."):
                out = ask(server, state.turns, settings)
            stats = {
                "tokens_per_s": out["tokens_per_s"],
                "tokens": out["usage"]["completion_tokens"],
                "latency_s": out["latency_s"],
                "adapter": out["adapter"],
            }
            state.turns.append({"role": "me", "text": out["reply"], "stats": stats})
            state.error = None
        except ServerError as e:
            state.error = str(e)

    st.title("Chat with your twin")
    st.caption("You write as the other person; the twin replies the way you would.")
    for i, turn in enumerate(state.turns):
        mine = turn["role"] == "me"
        # is_user puts a bubble on the right: the person typing here is "them".
        bubble(turn["text"] or "(empty reply)", is_user=not mine, key=f"turn-{i}",
               logo=AVATAR_ME if mine else AVATAR_THEM)  # fmt: skip
        if mine and turn.get("stats"):
            s = turn["stats"]
            st.caption(
                f"{s['tokens_per_s']:.1f} tokens/s · {s['tokens']} tokens · {s['latency_s']:.2f} s · {s['adapter']}"
            )
    if state.error:
        st.error(state.error)


main()
