"""The prompt template shared by training and serving."""

import pytest

from twin.errors import TwinError
from twin.prompt import (
    CHAT,
    PLAIN,
    build_prompt,
    build_training_pair,
    fit_context,
    resolve_template,
)

CTX = [{"role": "them", "text": "hi!"}, {"role": "me", "text": "hey\nwhat's up"}]


def test_plain_prompt_has_reference_sections_in_order_and_ends_where_reply_starts():
    p = build_prompt(CTX, "coffee later?", contact="Alice")
    sections = ["### Your previous communication:", "### Their new message:", "### Your response:"]
    positions = [p.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "Alice: hi!\nMe: hey\nwhat's up" in p
    assert p.endswith("### Your response:\n")
    assert "coffee later?" in p


def test_plain_prompt_without_context_or_contact_is_still_well_formed():
    p = build_prompt([], "hello")
    assert "(start of the conversation)" in p and "a friend" in p


def test_training_pair_is_prompt_plus_bare_response():
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure, 5pm", "contact": "Alice"}
    prompt, completion = build_training_pair(ex)
    assert prompt == build_prompt(CTX, "coffee?", contact="Alice")
    assert completion == "sure, 5pm"


def test_bad_role_is_a_user_error():
    with pytest.raises(TwinError, match="role"):
        build_prompt([{"role": "bot", "text": "x"}], "hi")


class FakeChatTokenizer:
    """A stand-in with just the chat-template surface (a real HF tokenizer is exercised in train tests)."""

    chat_template = "x"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        out = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return out + ("<assistant>" if add_generation_prompt else "")


def test_chat_template_maps_roles_and_splits_completion():
    tok = FakeChatTokenizer()
    assert resolve_template("auto", tok) == CHAT
    assert resolve_template("auto", None) == PLAIN
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure"}
    prompt, completion = build_training_pair(ex, template=CHAT, tokenizer=tok)
    assert "<user>hi!</><assistant>hey\nwhat's up</><user>coffee?</>" in prompt
    assert prompt.endswith("<assistant>")
    assert completion == "sure</>"


def test_resolve_template_rejects_unknown_and_chat_without_template():
    with pytest.raises(TwinError):
        resolve_template("v9", None)
    with pytest.raises(TwinError):
        resolve_template(CHAT, None)


def test_fit_context_keeps_newest_whole_turns_within_budget():
    turns = [
        {"role": "them", "text": "a" * 10},
        {"role": "me", "text": "b" * 10},
        {"role": "them", "text": "c" * 5},
    ]
    assert fit_context(turns, 100) == turns
    assert fit_context(turns, 17) == turns[1:]  # 6 + 11 = 17
    assert fit_context(turns, 16) == turns[2:]
    assert fit_context(turns, 0) == []


def test_fit_context_keeps_tail_of_an_oversized_newest_turn():
    turns = [{"role": "them", "text": "0123456789"}]
    assert fit_context(turns, 5) == [{"role": "them", "text": "6789"}]


def test_fit_context_with_a_token_counter():
    turns = [{"role": "them", "text": "one two three"}, {"role": "me", "text": "four five"}]
    words = lambda s: len(s.split())  # noqa: E731
    assert fit_context(turns, 3, words) == turns[1:]


MEM = [
    {"contact": "Alice", "them": "lunch tomorrow?", "me": "sure haha"},
    {"contact": None, "them": "are you in?", "me": "yep"},
]


def test_memory_templates_render_past_exchanges_in_their_own_section():
    from twin.prompt import CHAT_MEMORY, PLAIN_MEMORY, render_memory, with_memory

    assert with_memory(PLAIN, 3) == PLAIN_MEMORY and with_memory(CHAT, 3) == CHAT_MEMORY
    assert with_memory(PLAIN, 0) == PLAIN
    p = build_prompt(CTX, "coffee later?", template=PLAIN_MEMORY, contact="Alice", memory=MEM)
    sections = [
        "### How you answered similar messages before:",
        "### Your previous communication:",
        "### Their new message:",
        "### Your response:",
    ]
    positions = [p.index(s) for s in sections]
    assert positions == sorted(positions)
    assert render_memory(MEM) == "Alice: lunch tomorrow?\nMe: sure haha\n\nThem: are you in?\nMe: yep"
    assert render_memory(MEM) in p and p.endswith("### Your response:\n")
    # without memories the section says so; everything else is plain-v1 unchanged
    empty = build_prompt(CTX, "coffee later?", template=PLAIN_MEMORY, contact="Alice")
    assert "before:\n(none)\n\n###" in empty
    v1 = build_prompt(CTX, "coffee later?", contact="Alice")
    assert empty.replace("### How you answered similar messages before:\n(none)\n\n", "") == v1
    # training pairs carry the example's memory
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure", "contact": "Alice", "memory": MEM}
    prompt, completion = build_training_pair(ex, template=PLAIN_MEMORY)
    assert "Me: sure haha" in prompt and completion == "sure"


def test_chat_memory_goes_into_the_system_message_and_v1_refuses_memory():
    from twin.prompt import CHAT_MEMORY

    tok = FakeChatTokenizer()
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure", "memory": MEM}
    prompt, completion = build_training_pair(ex, template=CHAT_MEMORY, tokenizer=tok)
    system = prompt.split("</>")[0]
    assert system.startswith("<system>") and "before:\nAlice: lunch tomorrow?\nMe: sure haha" in system
    assert completion == "sure</>"
    with pytest.raises(TwinError, match="no memory section"):
        build_prompt(CTX, "coffee?", memory=MEM)
    with pytest.raises(TwinError, match="no memory section"):
        build_training_pair(ex, template=CHAT, tokenizer=tok)


class DropsMyEarlierTurns(FakeChatTokenizer):
    """Renders assistant messages only after the last user message (earlier replies are dropped)."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        kept = [m for i, m in enumerate(messages) if m["role"] != "assistant" or i > last_user]
        return super().apply_chat_template(kept, tokenize, add_generation_prompt)


class ReplyInsideGenerationPrompt(FakeChatTokenizer):
    """The generation prompt ends with a marker the full rendering does not have before the reply."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        out = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return out + ("<assistant>\n" if add_generation_prompt else "")


def test_template_check_catches_what_a_per_example_prefix_check_misses():
    from twin.prompt import check_chat_template

    ex = {"context": CTX, "instruction": "coffee?", "response": "sure"}
    # dropping my earlier replies keeps the prompt a prefix of the full text: only the probe sees it
    build_training_pair(
        ex, template=CHAT, tokenizer=DropsMyEarlierTurns(), turn_end=check_chat_template(FakeChatTokenizer())
    )
    with pytest.raises(TwinError, match="drops or reorders earlier turns") as err:
        check_chat_template(DropsMyEarlierTurns())
    assert "data.template=plain-v1" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TwinError, match="does not render the reply after its generation prompt"):
        check_chat_template(ReplyInsideGenerationPrompt())


class SpecialEndOfTurn(FakeChatTokenizer):
    """ChatML's shape: the end-of-turn is a special token and a newline follows it."""

    all_special_tokens = ["<|end|>"]

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        out = "".join(f"<{m['role']}>{m['content']}<|end|>\n" for m in messages)
        return out + ("<assistant>" if add_generation_prompt else "")


def test_completion_stops_at_the_end_of_turn_token():
    from twin.prompt import check_chat_template

    end = check_chat_template(SpecialEndOfTurn())
    assert (end.after, end.keep, end.ends_with_special) == ("<|end|>\n", "<|end|>", True)
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure\nat 5"}
    _, completion = build_training_pair(ex, template=CHAT, tokenizer=SpecialEndOfTurn())
    assert completion == "sure\nat 5<|end|>"
    # without a special token the whole tail is kept and EOS is added at tokenization
    plain_end = check_chat_template(FakeChatTokenizer())
    assert (plain_end.keep, plain_end.ends_with_special) == ("</>", False)


class NoSystemRole(FakeChatTokenizer):
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        if messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        return super().apply_chat_template(messages, tokenize, add_generation_prompt)


def test_a_template_that_raises_is_one_line():
    from twin.prompt import check_chat_template

    with pytest.raises(TwinError, match="refuses a twin conversation.*System role not supported") as err:
        check_chat_template(NoSystemRole())
    assert "\n" not in str(err.value) and "data.template=plain-v1" in str(err.value)
