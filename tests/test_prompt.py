"""The prompt template shared by training and serving; chat-v1 through the tiny Llama 3's and
Qwen2's real tokenizers (as `twin model tiny --arch llama|qwen2` builds them)."""

from pathlib import Path

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


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    """Each family's tokenizer as `twin model tiny --arch ARCH` builds it (its special tokens and chat
    template, trained on the built-in corpus), saved; :func:`family_tokenizer` loads it as twin does."""
    from twin.model.tiny import fallback_texts, train_tokenizer
    from twin.prompt import system_prompt

    out = {}
    for arch in ("falcon", "llama", "qwen2"):
        tok = train_tokenizer([*fallback_texts(), system_prompt(None)], 512, 1024, arch=arch)
        tok.save_pretrained(out.setdefault(arch, tmp_path_factory.mktemp(arch)))
    return out


def family_tokenizer(dirs: dict[str, Path], arch: str, chat_template: str | None = None):
    """The saved tokenizer loaded by twin's loader; ``chat_template`` swaps in another template
    (the shapes real bases ship that twin must refuse)."""
    from twin.model.load import load_tokenizer

    tok = load_tokenizer(dirs[arch])
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


# The families' published layouts, written out: a header, each turn, the generation prompt.
HEAD = {"llama": "<|begin_of_text|>", "qwen2": ""}
GEN = {"llama": "<|start_header_id|>assistant<|end_header_id|>\n\n", "qwen2": "<|im_start|>assistant\n"}
EOT = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>"}
SYSTEM = "You are chatting with a friend. Reply to their message the way you usually write."


def turn(arch: str, role: str, text: str) -> str:
    if arch == "llama":
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_chat_template_maps_roles_and_splits_completion(tokenizer_dirs, arch):
    tok = family_tokenizer(tokenizer_dirs, arch)
    assert resolve_template("auto", tok) == CHAT
    assert resolve_template("auto", family_tokenizer(tokenizer_dirs, "falcon")) == PLAIN  # no chat template
    assert resolve_template("auto", None) == PLAIN
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure"}
    prompt, completion = build_training_pair(ex, template=CHAT, tokenizer=tok)
    # their turns are `user`, mine `assistant`, the new message last, then the reply's header
    assert prompt == (
        HEAD[arch]
        + turn(arch, "system", SYSTEM)
        + turn(arch, "user", "hi!")
        + turn(arch, "assistant", "hey\nwhat's up")
        + turn(arch, "user", "coffee?")
        + GEN[arch]
    )
    assert prompt == build_prompt(CTX, "coffee?", template=CHAT, tokenizer=tok)  # serving renders the same
    # the reply ends with the end-of-turn token (ChatML's newline after it is not trained on)...
    assert completion == "sure" + EOT[arch]
    # ...which the tokenizer reads as its one special token: what generation stops at
    ids = tok(completion, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.convert_tokens_to_ids(EOT[arch]) and tok.decode(ids[:-1]) == "sure"


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


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_chat_memory_goes_into_the_system_message_and_v1_refuses_memory(tokenizer_dirs, arch):
    from twin.prompt import CHAT_MEMORY

    tok = family_tokenizer(tokenizer_dirs, arch)
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure", "memory": MEM}
    prompt, completion = build_training_pair(ex, template=CHAT_MEMORY, tokenizer=tok)
    memory = "How you answered similar messages before:\nAlice: lunch tomorrow?\nMe: sure haha\n\nThem: are you in?\nMe: yep"
    assert prompt.startswith(
        HEAD[arch] + turn(arch, "system", f"{SYSTEM}\n\n{memory}") + turn(arch, "user", "hi!")
    )
    assert prompt.endswith(turn(arch, "user", "coffee?") + GEN[arch])
    assert completion == "sure" + EOT[arch]
    with pytest.raises(TwinError, match="no memory section"):
        build_prompt(CTX, "coffee?", memory=MEM)
    with pytest.raises(TwinError, match="no memory section"):
        build_training_pair(ex, template=CHAT, tokenizer=tok)


# Shapes of real templates twin must refuse, on ChatML (Qwen2's): one that drops my replies before
# the last user message (as reasoning models' templates drop earlier turns' thinking), one whose
# generation prompt opens an empty think block the rendered reply does not have (Qwen3 without
# thinking), and one that refuses a system message (Gemma's).
DROPS_MY_EARLIER_TURNS = (
    "{%- set ns = namespace(last=0) %}"
    "{%- for m in messages %}{%- if m['role'] == 'user' %}{%- set ns.last = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}{%- if m['role'] != 'assistant' or loop.index0 > ns.last %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _chatml(replace: str = "", by: str = "", prefix: str = "") -> str:
    from twin.model.chat_templates import CHATML_TEMPLATE

    assert not replace or replace in CHATML_TEMPLATE
    return prefix + CHATML_TEMPLATE.replace(replace, by)


def test_template_check_catches_what_a_per_example_prefix_check_misses(tokenizer_dirs):
    from twin.prompt import check_chat_template

    ex = {"context": CTX, "instruction": "coffee?", "response": "sure"}
    drops = family_tokenizer(tokenizer_dirs, "qwen2", DROPS_MY_EARLIER_TURNS)
    good_end = check_chat_template(family_tokenizer(tokenizer_dirs, "qwen2"))
    # dropping my earlier replies keeps the prompt a prefix of the full text: only the probe sees it
    prompt, _ = build_training_pair(ex, template=CHAT, tokenizer=drops, turn_end=good_end)
    assert "hey\nwhat's up" not in prompt
    with pytest.raises(TwinError, match="drops or reorders earlier turns") as err:
        check_chat_template(drops)
    assert "data.template=plain-v1" in str(err.value) and "\n" not in str(err.value)
    think = _chatml(
        "'<|im_start|>assistant\\n' }}", "'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}"
    )
    with pytest.raises(TwinError, match="does not render the reply after its generation prompt"):
        check_chat_template(family_tokenizer(tokenizer_dirs, "qwen2", think))


@pytest.mark.parametrize(
    ("arch", "after"), [("llama", "<|eot_id|>"), ("qwen2", "<|im_end|>\n")], ids=["llama", "qwen2"]
)
def test_completion_stops_at_the_end_of_turn_token(tokenizer_dirs, arch, after):
    from twin.prompt import check_chat_template

    tok = family_tokenizer(tokenizer_dirs, arch)
    end = check_chat_template(tok)
    assert (end.after, end.keep, end.ends_with_special) == (after, EOT[arch], True)
    ex = {"context": CTX, "instruction": "coffee?", "response": "sure\nat 5"}
    _, completion = build_training_pair(ex, template=CHAT, tokenizer=tok)
    assert completion == "sure\nat 5" + EOT[arch]


def test_a_plain_text_end_of_turn_is_kept_whole(tokenizer_dirs):
    from twin.prompt import check_chat_template

    # ChatML with its end-of-turn as plain text: no special token to stop at, so the whole tail
    # is kept (and EOS is added at tokenization)
    tok = family_tokenizer(tokenizer_dirs, "qwen2", _chatml("<|im_end|>", "</turn>"))
    end = check_chat_template(tok)
    assert (end.after, end.keep, end.ends_with_special) == ("</turn>\n", "</turn>\n", False)
    _, completion = build_training_pair(
        {"context": [], "instruction": "hi", "response": "yo"}, template=CHAT, tokenizer=tok
    )
    assert completion == "yo</turn>\n"


def test_a_template_that_raises_is_one_line(tokenizer_dirs):
    from twin.prompt import check_chat_template

    gemma_like = "{%- if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}"
    tok = family_tokenizer(tokenizer_dirs, "qwen2", _chatml(prefix=gemma_like))
    with pytest.raises(TwinError, match="refuses a twin conversation.*System role not supported") as err:
        check_chat_template(tok)
    assert "\n" not in str(err.value) and "data.template=plain-v1" in str(err.value)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_group_in_a_chat_template_names_the_group_and_keeps_the_labels_in_their_turns(tokenizer_dirs, arch):
    tok = family_tokenizer(tokenizer_dirs, arch)
    ctx = [{"role": "them", "text": "Anna: saturday?\nTom: me"}, {"role": "me", "text": "in"}]
    ex = {
        "contact": "Climbing",
        "group": True,
        "context": ctx,
        "instruction": "Anna: 9 am?",
        "response": "ok",
    }
    prompt, completion = build_training_pair(ex, template=CHAT, tokenizer=tok)
    system = "You are chatting in the group Climbing. Reply to their messages the way you usually write."
    assert prompt == (
        HEAD[arch]
        + turn(arch, "system", system)
        + turn(arch, "user", "Anna: saturday?\nTom: me")
        + turn(arch, "assistant", "in")
        + turn(arch, "user", "Anna: 9 am?")
        + GEN[arch]
    )
    assert completion == "ok" + EOT[arch]  # my reply, no label
    assert prompt == build_prompt(
        ctx, "Anna: 9 am?", template=CHAT, tokenizer=tok, contact="Climbing", group=True
    )
