"""The official `openai` Python SDK against a real `twin serve` process: what an OpenAI client sees.

The SDK parses every response into its own models and raises its own errors, so this is the check
that twin's `/v1` routes are what such clients expect, not only what twin's own tests parse.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from helpers.server import AUTH, TOKEN

pytestmark = pytest.mark.slow  # talks to the session's real `twin serve` process

HISTORY = [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "hi!"}]
MESSAGE = "are you coming tonight?"


@pytest.fixture(scope="module")
def sdk(twin_server):
    with openai.OpenAI(base_url=twin_server + "/v1", api_key=TOKEN, timeout=60, max_retries=0) as client:
        yield client


def twin_reply(url: str, **extra) -> dict:
    """What `/reply` answers for the same conversation (``HISTORY`` then ``MESSAGE``), greedy."""
    body = {"message": MESSAGE, "history": [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi!"}],
            "temperature": 0, "max_new_tokens": 8, **extra}  # fmt: skip
    r = httpx.post(url + "/reply", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_sdk_lists_the_adapters_as_models(sdk):
    assert [m.id for m in sdk.models.list()] == ["me", "base"]


def test_the_sdk_gets_the_reply_that_reply_gives(sdk, twin_server):
    messages = [{"role": "system", "content": "ignored"}, *HISTORY, {"role": "user", "content": MESSAGE}]
    done = sdk.chat.completions.create(model="me", messages=messages, temperature=0, max_tokens=8)
    expected = twin_reply(twin_server)
    assert done.object == "chat.completion" and done.model == "me"
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == expected["reply"]
    assert done.choices[0].finish_reason in ("stop", "length")
    assert done.usage.completion_tokens == expected["usage"]["completion_tokens"]
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    # the newer name for the cap is honoured as the old one is
    short = sdk.chat.completions.create(model="me", messages=messages, temperature=0, max_completion_tokens=2)
    assert short.usage.completion_tokens <= 2 and expected["reply"].startswith(
        short.choices[0].message.content
    )


def test_the_sdk_streams_the_same_reply_and_its_usage(sdk, twin_server):
    messages = [*HISTORY, {"role": "user", "content": MESSAGE}]
    stream = sdk.chat.completions.create(
        model="me", messages=messages, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    expected = twin_reply(twin_server)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected["reply"]
    assert chunks[0].choices[0].delta.role == "assistant"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == expected["usage"]["completion_tokens"]


def test_a_group_goes_through_extra_body_with_each_writers_name(sdk, twin_server):
    messages = [
        {"role": "user", "content": "who is in for saturday?", "name": "Anna"},
        {"role": "assistant", "content": "me!"},
        {"role": "user", "content": MESSAGE, "name": "Oleg"},
    ]
    done = sdk.chat.completions.create(
        model="me",
        messages=messages,
        temperature=0,
        max_tokens=8,
        extra_body={"group": True, "contact": "Climbing"},
    )
    history = [
        {"role": "them", "text": "who is in for saturday?", "name": "Anna"},
        {"role": "me", "text": "me!"},
    ]
    expected = twin_reply(twin_server, history=history, name="Oleg", group=True, contact="Climbing")
    assert done.choices[0].message.content == expected["reply"]


def test_the_sdk_raises_its_own_errors_with_the_field_named(sdk, twin_server):
    stranger = openai.OpenAI(base_url=twin_server + "/v1", api_key="wrong", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    user = [{"role": "user", "content": MESSAGE}]
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        sdk.chat.completions.create(model="me", messages=user, max_tokens=100_000)
    assert bad.value.body["param"] == "max_tokens"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="nobody", messages=user)
    assert missing.value.body["param"] == "model"
