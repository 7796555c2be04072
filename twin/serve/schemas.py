"""Request/response models of the twin server (pydantic), with the size caps built in.

The caps are server settings (``Limits``), so the request models are built per app by
:func:`request_models`; a value over a cap is a 422 that names the field, never a silent cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Registered adapter names: short and path-free, so a request can never point at a directory.
from twin.serve.engine import NAME_PATTERN


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask for (``twin serve --max-*`` options)."""

    max_body_bytes: int = 256 * 1024
    max_history: int = 100
    max_message_chars: int = 4000
    max_new_tokens: int = 512
    max_contact_chars: int = 100


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


def request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(ReplyRequest, ChatCompletionRequest)`` with ``limits`` as their field constraints."""
    return _reply_request(limits), _chat_completion_request(limits)


def _reply_request(limits: Limits) -> type[BaseModel]:
    """``POST /reply``'s body: twin's own format (a message, the history as me/them turns)."""
    Message = Annotated[str, Field(min_length=1, max_length=limits.max_message_chars)]
    Text = Annotated[str, Field(max_length=limits.max_message_chars)]

    class Turn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        role: Literal["me", "them"]
        text: Text

    class ReplyRequest(Sampling):
        model_config = ConfigDict(extra="forbid")
        message: Message
        history: list[Turn] = Field(default_factory=list, max_length=limits.max_history)
        adapter: str | None = Field(None, pattern=NAME_PATTERN)
        contact: str | None = Field(None, max_length=limits.max_contact_chars)
        max_new_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)

    return ReplyRequest


def _chat_completion_request(limits: Limits) -> type[BaseModel]:
    """``POST /v1/chat/completions``' body: the OpenAI format, with twin's caps."""
    Text = Annotated[str, Field(max_length=limits.max_message_chars)]

    class TextPart(BaseModel):
        type: Literal["text"]
        text: Text

    class ChatMessage(BaseModel):
        # OpenAI clients send fields twin has no use for (tool calls, refusal...): ignored.
        model_config = ConfigDict(extra="ignore")
        role: Literal["system", "developer", "user", "assistant"]
        content: Text | list[TextPart] | None = None
        name: str | None = Field(None, max_length=limits.max_contact_chars)

        def text(self) -> str:
            if isinstance(self.content, list):
                return "".join(p.text for p in self.content)
            return self.content or ""

    class ChatCompletionRequest(Sampling):
        model_config = ConfigDict(extra="ignore")
        # +1: the history cap plus the message being answered (and room for a system message).
        messages: list[ChatMessage] = Field(min_length=1, max_length=limits.max_history + 2)
        model: str | None = Field(None, pattern=NAME_PATTERN)
        max_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)
        max_completion_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)
        stream: bool = False
        n: int = Field(1, ge=1, le=1)
        stop: str | list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
            None, max_length=4
        )

        @field_validator("messages")
        @classmethod
        def _last_is_user(cls, v: list[Any]) -> list[Any]:
            if v[-1].role != "user":
                raise ValueError("the last message must have role 'user' (their message to reply to)")
            if not v[-1].text():
                raise ValueError("the last message's content is empty")
            if len(v[-1].text()) > limits.max_message_chars:
                raise ValueError(f"the last message is over {limits.max_message_chars} characters")
            return v

        def stops(self) -> tuple[str, ...]:
            if self.stop is None:
                return ()
            return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    return ChatCompletionRequest
