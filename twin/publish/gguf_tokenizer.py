"""A GGUF's tokenizer metadata: a byte-level BPE's tokens, merges, token types, special ids, the
pre-tokenizer whose split llama.cpp applies identically (:func:`pre_tokenizer_name`), and the chat
template; written as llama.cpp's ``gpt2`` tokenizer model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.errors import TwinError

# The Split regexes of Llama 3's and Qwen2's tokenizer.json, and the llama.cpp pre-tokenizer that
# splits text the same way. A pre-tokenizer decides where BPE may merge, so a different one gives
# different tokens for the same text (Llama 3 groups digits by three, Qwen2 splits each digit, GPT-2
# keeps runs of digits; they also cut newlines differently).
_SPLIT_PRE = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


def pre_tokenizer_name(tj: dict, model_type: str, where: Path) -> str:
    """The llama.cpp pre-tokenizer that splits text as this tokenizer (its backend JSON) does.

    The tiny Falcon and Llama tokenizers split with GPT-2's byte-level regex: ``gpt-2``, not
    ``llama-bpe``, whose regex groups digits by three and cuts newlines differently (other tokens).
    The tiny Qwen2's is loaded by transformers as a Qwen2 tokenizer with Qwen2's Split regex
    (single digits): ``qwen2``. Downloaded Llama 3 / Qwen2.5 tokenizers carry their own regex,
    matched the same way; anything else is refused rather than silently tokenized differently.
    """
    pre = tj.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = (pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else []
    if model_type == "falcon" and [s.get("type") for s in steps][-1:] == ["ByteLevel"]:
        return "falcon"  # Falcon-7B's own tokenizer: punctuation + digits + byte-level
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and steps[1].get("type") == "ByteLevel"
        and not steps[1].get("use_regex", True)
    ):
        name = _SPLIT_PRE.get((steps[0].get("pattern") or {}).get("Regex", ""))
        if name:
            return name
    raise TwinError(
        f"{where}: a pre-tokenizer llama.cpp is not known to reproduce (tokens would differ); "
        "use llama.cpp's convert_hf_to_gguf.py on the merged dir"
    )


def tokenizer_metadata(tokenizer: Any, vocab_size: int, model_type: str, where: Path) -> dict:
    """Tokens, types, merges, special ids, pre-tokenizer name and chat template of a byte-level BPE.

    Read from the tokenizer as transformers loads it, not from ``tokenizer.json``: transformers 5
    gives some model types their family's pre-tokenizer whatever the file says (a ``qwen2`` model's
    tokenizer splits with Qwen2's regex), and the GGUF must tokenize as twin trained.
    """
    from gguf import TokenType

    tj = json.loads(tokenizer.backend_tokenizer.to_str())
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise TwinError(f"{where}: only byte-level BPE tokenizers are supported")
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {t["id"]: t for t in tj.get("added_tokens") or []}
    for tid, t in added.items():
        vocab[t["content"]] = tid
    by_id = {i: tok for tok, i in vocab.items()}
    tokens, types = [], []
    for i in range(max(vocab_size, max(by_id) + 1 if by_id else 0)):
        if i not in by_id:  # embedding rows past the tokenizer (padded vocab): llama.cpp's convention
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(TokenType.CONTROL if added[i].get("special") else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
    template = getattr(tokenizer, "chat_template", None)
    return {
        "tokens": tokens,
        "types": [int(t) for t in types],
        "merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []],
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "pre": pre_tokenizer_name(tj, model_type, where),
        "chat_template": template if isinstance(template, str) else None,
    }


def add_tokenizer_kv(writer: Any, tok: dict, *, add_bos: bool, eot: int | None, bos: int | None) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    writer.add_eos_token_id(tok["eos"])
    writer.add_bos_token_id(bos if bos is not None else tok["eos"])
    if eot is not None:
        writer.add_eot_token_id(eot)
    if tok["pad"] is not None:
        writer.add_pad_token_id(tok["pad"])
    # twin renders prompts and tokenizes them without special tokens; a BOS that a chat template
    # starts with (Llama 3) is left to llama.cpp, as stock GGUFs of that family do.
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    if tok["chat_template"]:
        writer.add_chat_template(tok["chat_template"])


def hf_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise TwinError(f"{path}: cannot load its tokenizer ({str(e).splitlines()[0]})") from None
