"""Ollama ``Modelfile``s for ``twin publish gguf``: the twin's prompt as an Ollama Go template.

``plain-v1`` is twin's own prompt (:data:`PLAIN_V1_GO_TEMPLATE`). A ``chat-v1`` twin uses its
base's chat template; the Go template for it is *derived* from that template (the Jinja one in the
tokenizer, the same :func:`twin.prompt.build_prompt` renders): it is rendered once with marker
strings as message contents, and the text around the markers gives each role's opening, the
end-of-turn closing, the generation prompt and the default system block. So Llama 3's header tokens
and ChatML's ``<|im_start|>``/``<|im_end|>`` are never copied here by hand, and a template twin
cannot cut that way (user turns rendered differently by position, no end-of-turn token) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twin.errors import TwinError

STOP = "###"  # every twin.prompt.STOP_STRINGS entry contains it

# The plain-v1 prompt (twin.prompt._PLAIN_HEADER) as an Ollama Go template over .Messages:
# user turns are "them", assistant turns are "me"; the last message is their new message.
# Ollama knows no contact name, so it renders as twin does without one ("a friend" / "Them").
PLAIN_V1_GO_TEMPLATE = """You are chatting with a friend. Write your reply to their message the way you usually write.

### Your previous communication:
{{- $hist := false }}
{{- range $i, $m := .Messages }}
{{- if and (ne $m.Role "system") (gt (len (slice $.Messages $i)) 1) }}{{ $hist = true }}
{{ if eq $m.Role "assistant" }}Me{{ else }}Them{{ end }}: {{ $m.Content }}
{{- end }}
{{- end }}
{{- if not $hist }}
(start of the conversation)
{{- end }}

### Their new message:
{{ range $i, $m := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}{{ $m.Content }}{{ end }}{{ end }}

### Your response:
"""

# Marker contents: plain words, so templates that trim or escape content leave them intact.
_MARK = {"system": "TwinMarkSystem", "user": "TwinMarkUser", "assistant": "TwinMarkAssistant"}
_LAST = "TwinMarkLastUser"


@dataclass(frozen=True)
class ChatTurns:
    """A chat template cut into the pieces every message and the generation prompt are made of."""

    bos: str | None  # the template's leading BOS text (llama.cpp adds the token itself: add_bos)
    default_system: str  # what the template renders when the first message is not a system one
    open: dict[str, str]  # role -> text before the content
    close: str  # after each message's content: the end-of-turn token and its newlines
    generation: str  # the assistant opening the prompt ends with


def _render(tokenizer: Any, messages: list[dict]) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # jinja errors of a template twin did not write
        raise TwinError(f"chat template: cannot render a system/user/assistant chat ({e})") from None


def chat_turns(tokenizer: Any) -> ChatTurns:
    """Cut the tokenizer's chat template into :class:`ChatTurns` (see the module docstring)."""
    msgs = [{"role": r, "content": c} for r, c in _MARK.items()] + [{"role": "user", "content": _LAST}]
    parts = re.split("|".join([*_MARK.values(), _LAST]), _render(tokenizer, msgs))
    if len(parts) != 5:
        raise TwinError("chat template: it does not render every message's content once; cannot derive it")
    head, after_system, after_user, after_assistant, tail = parts
    if after_system != after_assistant:
        raise TwinError("chat template: user turns render differently by position; cannot derive it")
    eot = tokenizer.eos_token or ""
    cut = after_system.find(eot) if eot else -1
    if cut < 0:
        raise TwinError(f"chat template: the end-of-turn token {eot!r} does not end a turn; cannot derive it")
    close = re.match(rf"{re.escape(eot)}\s*", after_system[cut:]).group(0)  # type: ignore[union-attr]
    close = after_system[:cut] + close
    for piece in (after_user, tail):
        if not piece.startswith(close):
            raise TwinError("chat template: turns do not all end the same way; cannot derive it")
    open_user = after_system[len(close) :]
    bos = tokenizer.bos_token if tokenizer.bos_token and head.startswith(tokenizer.bos_token) else None
    no_system = _render(tokenizer, [{"role": "user", "content": _LAST}]).split(_LAST)[0]
    if not no_system.endswith(open_user):
        raise TwinError(
            "chat template: a chat without a system message renders differently; cannot derive it"
        )
    skip = len(bos or "")
    return ChatTurns(
        bos=bos,
        default_system=no_system[skip : len(no_system) - len(open_user)],
        open={"system": head[skip:], "user": open_user, "assistant": after_user[len(close) :]},
        close=close,
        generation=tail[len(close) :],
    )


def chat_go_template(turns: ChatTurns) -> str:
    """The Ollama Go template for :class:`ChatTurns`, without the BOS (llama.cpp adds it).

    One line of actions with no whitespace trimming (``{{-``), which would eat the newlines that
    are part of the turns. Llama 3's template trims each message's content; Go templates cannot,
    which only matters for content with surrounding whitespace (twin's messages have none).
    """
    pieces = [*turns.open.values(), turns.close, turns.generation, turns.default_system]
    if any("{{" in p for p in pieces):
        raise TwinError("chat template: its text contains '{{', which Ollama's template would execute")
    out = ""
    if turns.default_system:
        out += '{{ if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
        out += turns.default_system + "{{ end }}"
    out += "{{ range .Messages }}"
    for i, (role, opening) in enumerate(turns.open.items()):
        out += f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}'
        out += opening + "{{ .Content }}" + turns.close
    return out + "{{ end }}{{ end }}" + turns.generation


def ollama_modelfile(
    source: str,
    *,
    template: str,
    go_template: str | None,
    stops: list[str],
    ctx: int,
    sampling: dict | None = None,
    system: str | None = None,
    adapter: str | None = None,
    notes: tuple[str, ...] = (),
) -> str:
    """An Ollama Modelfile: FROM (and ADAPTER), the twin's prompt template, stops, sampling."""
    s = {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 50,
        "repetition_penalty": 1.1,
        "max_new_tokens": 64,
        **(sampling or {}),
    }
    lines = [
        "# Ollama Modelfile written by `twin publish gguf`.",
        "#   ollama create mytwin -f Modelfile && ollama run mytwin",
        *(f"# {n}" for n in notes),
        f"FROM {source}",
    ]
    if adapter:
        lines.append(f"ADAPTER ./{adapter}")
    lines.append("")
    if go_template is not None:
        lines.append(f'TEMPLATE """{go_template}"""')
    else:
        lines.append(
            f"# template {template}: the model's own chat template is stored in the GGUF "
            "(tokenizer.chat_template); Ollama picks it up from there."
        )
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += ["", *(f'PARAMETER stop "{t}"' for t in dict.fromkeys(stops))]
    lines += [
        f"PARAMETER temperature {s['temperature']}",
        f"PARAMETER top_p {s['top_p']}",
        f"PARAMETER top_k {s['top_k']}",
        f"PARAMETER repeat_penalty {s['repetition_penalty']}",
        f"PARAMETER num_predict {s['max_new_tokens']}",
        f"PARAMETER num_ctx {min(ctx, 2048)}",
        "",
    ]
    return "\n".join(lines)


def prompt_settings(template: str, tokenizer: Any, stop_tokens: list[str]) -> dict:
    """Go template, SYSTEM line, stops and add_bos for a twin ``template`` on this tokenizer.

    ``add_bos``: whether llama.cpp must add BOS itself, which is when the chat template starts with
    it (Llama 3); plain-v1 prompts were trained without one.
    """
    from twin.prompt import CHAT, CHAT_MEMORY, PLAIN, system_prompt

    if template == PLAIN:
        return {"go": PLAIN_V1_GO_TEMPLATE, "system": None, "stops": [STOP, *stop_tokens], "add_bos": False}
    if template in (CHAT, CHAT_MEMORY):
        turns = chat_turns(tokenizer)
        return {
            "go": chat_go_template(turns),
            "system": system_prompt(None),  # chat-v2's memory section needs twin's retrieval: left out
            "stops": stop_tokens,
            "add_bos": turns.bos is not None,
        }
    return {"go": None, "system": None, "stops": [STOP, *stop_tokens], "add_bos": False}
