"""Request/response models of the twin server (pydantic).

The size caps are server settings (``Limits``), so the models hold the shape and each request's
``over_limits(limits)`` lists what is over the app's caps; the route turns that into a 422 that names
the field (:func:`twin.serve.deps.within_limits`), never a silent cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from twin.inference.prompting import Conversation
from twin.prompt import group_conversation, group_members

# Registered adapter names: short and path-free, so a request can never point at a directory.
from twin.serve.engine import NAME_PATTERN
from twin.text.normalize import clean_message


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask for (``twin serve --max-*`` options)."""

    max_body_bytes: int = 256 * 1024
    max_history: int = 100
    max_message_chars: int = 4000
    max_new_tokens: int = 512
    max_contact_chars: int = 100


# Every text of a request (messages, names) is cleaned as prepare cleaned the training texts: line
# breaks as "\n", no control characters, no spaces around it (twin.text.normalize), so the served
# prompt is the trained one whatever the client sent.
Text = Annotated[str, AfterValidator(clean_message)]
NO_TEXT = "has no text once spaces and control characters are removed"  # a message cleaned to ""


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class ReplyResponse(BaseModel):
    reply: str
    adapter: str
    usage: Usage
    latency_s: float  # the generation's own time
    tokens_per_s: float
    queue_s: float = 0.0  # time spent waiting for the worker before generation began
    finish_reason: Literal["stop", "length"] = "stop"


class AdapterOut(BaseModel):
    name: str
    template: str
    default: bool
    created: str | None = None
    base_model_type: str | None = None


class AdaptersResponse(BaseModel):
    default: str
    adapters: list[AdapterOut]


class Sampling(BaseModel):
    """Sampling fields both request kinds accept (None: the server's default)."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    repetition_penalty: float | None = Field(None, ge=0.5, le=2)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["me", "them"]
    text: Text
    name: Text | None = None  # in a group: who wrote this message of theirs


class ReplyRequest(Sampling):
    """``POST /reply``'s body: twin's own format (a message, the history as me/them turns).

    ``group``: the chat is a group called ``contact``; ``name`` says who sent ``message`` and each
    ``them`` turn's ``name`` who wrote it, and the prompt is rendered as training rendered a group's
    (:func:`twin.prompt.group_conversation`: consecutive messages of one side form one turn, theirs
    labelled per person, everything since my last message is what the reply answers). ``chat_id``:
    the chat's dialog id as in ``data/raw`` (``twin drafts`` sends it), so a twin trained with
    ``--memory`` remembers this chat's exchanges even after its name changed or when two share a name.
    """

    model_config = ConfigDict(extra="forbid")
    message: Text = Field(min_length=1)
    history: list[Turn] = Field(default_factory=list)
    adapter: str | None = Field(None, pattern=NAME_PATTERN)
    contact: Text | None = None
    group: bool = False
    name: Text | None = None
    chat_id: int | None = None
    max_new_tokens: int | None = Field(None, ge=1)
    # EOS blocked for this many tokens (default 1: never an empty reply); = max_new_tokens forces the length
    min_new_tokens: int | None = Field(None, ge=0)

    @field_validator("message")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if not v:
            raise ValueError(NO_TEXT)
        return v

    def over_limits(self, limits: Limits) -> list[tuple[tuple, str]]:
        """Each field over the server's caps: ``(location, problem)``."""
        return [
            *_chars(("message",), self.message, limits.max_message_chars),
            *_items(("history",), self.history, limits.max_history),
            *(p for i, t in enumerate(self.history) for p in _chars(("history", i, "text"), t.text, limits.max_message_chars)),
            *(p for i, t in enumerate(self.history) for p in _chars(("history", i, "name"), t.name, limits.max_contact_chars)),
            *_chars(("contact",), self.contact, limits.max_contact_chars),
            *_chars(("name",), self.name, limits.max_contact_chars),
            *_at_most(("max_new_tokens",), self.max_new_tokens, limits.max_new_tokens),
        ]  # fmt: skip

    def conversation(self) -> Conversation:
        """The conversation as the prompt takes it; a group's turned as in prepare, its members listed."""
        if not self.group:
            history = [{"role": t.role, "text": t.text} for t in self.history]
            return Conversation(history, self.message, self.contact, chat_id=self.chat_id)
        msgs = [
            *(t.model_dump() for t in self.history),
            {"role": "them", "text": self.message, "name": self.name},
        ]
        return group_request(msgs, self.contact, self.chat_id)


def group_request(msgs: list[dict], contact: str | None, chat_id: int | None) -> Conversation:
    """A group's messages (``{"role", "text", "name"}``, oldest first, the last one theirs) as prepare
    turned a group into an example (:func:`twin.prompt.group_conversation`), with its members listed
    (their labels stop a reply). ``/reply`` and ``/v1/chat/completions`` both build a group's prompt here."""
    context, instruction = group_conversation(msgs)
    return Conversation(context, instruction, contact, True, tuple(group_members(msgs)), chat_id)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    # OpenAI clients send fields twin has no use for (tool calls, refusal...): ignored.
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        """The message's text, cleaned as :data:`Text` (its parts joined first)."""
        if isinstance(self.content, list):
            return clean_message("".join(p.text for p in self.content))
        return clean_message(self.content or "")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False  # OpenAI's: one more chunk, with empty choices, carries the usage


class ChatCompletionRequest(Sampling):
    """``POST /v1/chat/completions``' body: the OpenAI format, with twin's caps.

    Beside OpenAI's fields, three of ``/reply``'s (an OpenAI client sends them with ``extra_body``):
    ``contact`` the chat's name (in a personal chat, by default the last user message's ``name``);
    ``group``: the chat is a group called ``contact``, each user message's ``name`` says who wrote it;
    ``chat_id`` the dialog id as in ``data/raw``, for memory.
    """

    model_config = ConfigDict(extra="ignore")
    messages: list[ChatMessage] = Field(min_length=1)
    contact: Text | None = None
    group: bool = False
    chat_id: int | None = None
    model: str | None = Field(None, pattern=NAME_PATTERN)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
    stop: str | list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, max_length=4)

    @field_validator("messages")
    @classmethod
    def _last_is_user(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        if v[-1].role != "user":
            raise ValueError("the last message must have role 'user' (their message to reply to)")
        if not v[-1].text():
            raise ValueError(f"the last message's content: {NO_TEXT}")
        return v

    def conversation(self) -> Conversation:
        """The conversation as the prompt takes it: the user is "them", the assistant is "me"; system
        messages are not part of it. A group's is built as ``/reply`` builds one (:func:`group_request`)."""
        msgs = [
            {"role": "them" if m.role == "user" else "me", "text": m.text(), "name": m.name}
            for m in self.turns()
        ]
        if self.group:
            return group_request(msgs, self.contact, self.chat_id)
        *earlier, last = msgs
        history = [{"role": m["role"], "text": m["text"]} for m in earlier]
        return Conversation(history, last["text"], self.contact or last["name"], chat_id=self.chat_id)

    def turns(self) -> list[ChatMessage]:
        """The user and assistant messages, oldest first (the last one is the message to answer)."""
        return [m for m in self.messages if m.role in ("user", "assistant")]

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def over_limits(self, limits: Limits) -> list[tuple[tuple, str]]:
        """Each field over the server's caps: ``(location, problem)``."""
        chars = limits.max_message_chars
        return [
            # +2: the history cap plus the message being answered (and room for a system message)
            *_items(("messages",), self.messages, limits.max_history + 2),
            *(p for i, m in enumerate(self.messages) for p in _message_chars(i, m, chars)),
            *(p for i, m in enumerate(self.messages) for p in _chars(("messages", i, "name"), m.name, limits.max_contact_chars)),
            *_chars(("contact",), self.contact, limits.max_contact_chars),
            *_at_most(("max_tokens",), self.max_tokens, limits.max_new_tokens),
            *_at_most(("max_completion_tokens",), self.max_completion_tokens, limits.max_new_tokens),
        ]  # fmt: skip


def _message_chars(i: int, m: ChatMessage, chars: int) -> list[tuple[tuple, str]]:
    if isinstance(m.content, list):
        return [p for j, part in enumerate(m.content) for p in _chars(("messages", i, "content", j, "text"), part.text, chars)]  # fmt: skip
    return _chars(("messages", i, "content"), m.content, chars)


def _chars(loc: tuple, text: str | None, cap: int) -> list[tuple[tuple, str]]:
    return [(loc, f"at most {cap} characters")] if text is not None and len(text) > cap else []


def _items(loc: tuple, items: list, cap: int) -> list[tuple[tuple, str]]:
    return [(loc, f"at most {cap} items")] if len(items) > cap else []


def _at_most(loc: tuple, value: int | None, cap: int) -> list[tuple[tuple, str]]:
    return [(loc, f"at most {cap}")] if value is not None and value > cap else []
