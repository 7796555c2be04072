"""One evaluator for every trainer's result: reply-token cross-entropy on ``val.jsonl``.

Each trainer logs its own loss its own way (per micro-batch means, running windows, token-weighted
sums), so "the same loss after the same steps" is checked here, identically for all: the examples
are encoded by ``twin.examples`` (prompt by ``twin/prompt.py`` with ``--template``, the reply's end
token appended, prompt masked) and the loss is the mean over every reply token of the whole val set.

``--adapter DIR``: a peft LoRA adapter on ``--base`` (twin, Trainer). ``--state FILE``: a full
Hugging Face state dict (litgpt's merged model converted back with its ``convert_lit_checkpoint``).
Prints one JSON line ``{"val_loss": float, "tokens": int}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def val_loss(
    model, tokenizer, val_file: Path, max_seq_length: int, template: str = "plain-v1", batch: int = 16
) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    from twin.examples import collate, encode_examples, read_examples

    data = encode_examples(read_examples(val_file), tokenizer, template, max_seq_length)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch):
            b = collate(data, list(range(start, min(start + batch, len(data)))), tokenizer.pad_token_id)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            targets = b["labels"][:, 1:]
            keep = targets != -100
            total += float(F.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="sum"))
            count += int(keep.sum())
    return total / max(count, 1), count


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench.baselines.evaluate")
    ap.add_argument("--base", required=True)
    ap.add_argument("--val", required=True, type=Path)
    ap.add_argument("--adapter")
    ap.add_argument("--state")
    ap.add_argument("--max-seq-length", type=int, default=384)
    ap.add_argument("--template", default="plain-v1", choices=("plain-v1", "chat-v1"))
    a = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(a.base)
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    if a.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, a.adapter)
    elif a.state:
        missing, unexpected = model.load_state_dict(torch.load(a.state, weights_only=True), strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise SystemExit(f"state dict does not fit the base: missing {missing}, unexpected {unexpected}")
    loss, n = val_loss(model, tokenizer, a.val, a.max_seq_length, a.template)
    out = {"val_loss": loss, "tokens": n}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
