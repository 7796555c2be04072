"""Tokenizer settings of each base family the tiny builder makes, with the family's chat template.

The templates are written in this project after the families' published formats (Llama 3's header
tokens and ``<|eot_id|>``; Qwen2's ChatML ``<|im_start|>``/``<|im_end|>``), reduced to what a chat
needs: no tool calls, no knowledge-date preamble. ``bos`` is part of the template, as in Llama 3's
own, because twin tokenizes rendered prompts with ``add_special_tokens=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TokenizerFamily:
    """Special tokens (in vocabulary order, ids 0..n-1) and roles of one base family's tokenizer."""

    special: tuple[str, ...]
    eos: str  # what ends a reply: the end-of-turn token for chat families
    pad: str | None  # None: the loader pads with eos (as for Falcon-7B's own tokenizer)
    bos: str | None
    chat_template: str | None
    stop: tuple[str, ...]  # every token generation stops at (generation_config.eos_token_id)


FAMILIES: dict[str, TokenizerFamily] = {
    "falcon": TokenizerFamily(
        special=("<|endoftext|>", "<|pad|>"),
        eos="<|endoftext|>",
        pad="<|pad|>",
        bos="<|endoftext|>",
        chat_template=None,
        stop=("<|endoftext|>",),
    ),
    "llama": TokenizerFamily(
        special=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
        ),
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        bos="<|begin_of_text|>",
        chat_template=LLAMA3_TEMPLATE,
        stop=("<|end_of_text|>", "<|eot_id|>"),
    ),
    "qwen2": TokenizerFamily(
        special=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        pad="<|endoftext|>",
        bos=None,
        chat_template=CHATML_TEMPLATE,
        stop=("<|im_end|>", "<|endoftext|>"),
    ),
}
ARCHS = tuple(FAMILIES)
