"""Baseline: LoRA fine-tuning the way most tutorials do it — transformers ``Trainer`` + peft.

The recipe (as in the peft / transformers causal-LM fine-tuning tutorials): load the model with
``AutoModelForCausalLM``, wrap it with ``get_peft_model(LoraConfig(...))``, tokenize every
example into ``input_ids`` + ``labels`` (prompt masked with -100), pad per batch with
``DataCollatorForSeq2Seq``, and call ``Trainer.train()`` with ``TrainingArguments``. Everything the
comparison holds equal is passed in: the same examples rendered by ``twin/prompt.py`` (identical
text and token ids; EOS appended to the reply; loss on reply + EOS only), LoRA r/alpha/dropout on
Falcon's ``query_key_value``, sequence length, micro-batch, gradient accumulation, fp32, optimizer
steps, AdamW learning rate / weight decay / clipping, and the cosine schedule with the same warmup.
Everything else is the Trainer's default (random batch order, ``adamw_torch_fused``, no workers).

Run (main venv): ``python -m bench.baselines.hf_trainer --base DIR --data DIR --out DIR --steps N ...``.
Writes ``<out>/result.json``: real (non-padding) tokens, training-loop seconds, last train loss.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

IGNORE = -100


def tokenize_examples(rows: list[dict], tokenizer, max_len: int) -> list[dict]:
    """input_ids = prompt + reply + EOS; labels mask the prompt. Long prompts lose their start."""
    from twin.prompt import build_training_pair

    out = []
    for row in rows:
        prompt, reply = build_training_pair(row)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (p + r)[:max_len]
        labels = ([IGNORE] * len(p) + r)[:max_len]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.baselines.hf_trainer", description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-seq-length", type=int, default=384)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--warmup-ratio", type=float, default=0.05)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    return ap.parse_args(argv)


def _lora_model(a: argparse.Namespace) -> tuple[Any, Any]:
    """The tutorial way: ``AutoModelForCausalLM`` in fp32 wrapped by ``get_peft_model``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(a.base)
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    lora = LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout,
                      target_modules=["query_key_value"], task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, lora), tokenizer


def _counting_collator(tokenizer: Any, counted: dict[str, int]) -> Callable[[list[dict]], Any]:
    """``DataCollatorForSeq2Seq`` that adds each batch's real and padded tokens to ``counted``."""
    from transformers import DataCollatorForSeq2Seq

    base_collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)

    def collator(features: list[dict]) -> Any:
        batch = base_collator(features)
        # Counted as the batches are built (no workers, no prefetch: each one is trained on).
        counted["real_tokens"] += int(batch["attention_mask"].sum())
        counted["padded_tokens"] += batch["input_ids"].numel()
        return batch

    return collator


def _clock_callback(clock: dict[str, float], losses: list[tuple[int, float]]) -> Any:
    """A ``TrainerCallback`` timing the training loop alone and recording every logged loss."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock["begin"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            clock["end"] = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    return Clock()


def _training_args(a: argparse.Namespace, out: Path) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=a.micro_batch,
        gradient_accumulation_steps=a.batch // a.micro_batch,
        max_steps=a.steps,
        learning_rate=a.lr,
        weight_decay=a.weight_decay,
        max_grad_norm=a.max_grad_norm,
        lr_scheduler_type="cosine",
        warmup_steps=a.warmup_ratio,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=a.seed,
        use_cpu=True,
        disable_tqdm=True,
    )


def main(argv: list[str] | None = None) -> dict:
    a = _parse_args(argv)
    from transformers import Trainer

    from twin.fileio import iter_jsonl

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    model, tokenizer = _lora_model(a)
    rows = [row for _, row in iter_jsonl(Path(a.data) / "train.jsonl")]
    dataset = tokenize_examples(rows, tokenizer, a.max_seq_length)
    counted = {"real_tokens": 0, "padded_tokens": 0}
    clock: dict[str, float] = {}
    losses: list[tuple[int, float]] = []
    trainer = Trainer(model=model, args=_training_args(a, out), train_dataset=dataset,
                      data_collator=_counting_collator(tokenizer, counted),
                      callbacks=[_clock_callback(clock, losses)])  # fmt: skip
    trainer.train()
    model.save_pretrained(out / "adapter")
    loop = clock["end"] - clock["begin"]
    result = {
        "tool": "trainer",
        "steps": a.steps,
        "real_tokens": counted["real_tokens"],
        "padded_tokens": counted["padded_tokens"],
        "loop_seconds": loop,
        "tokens_per_s": counted["real_tokens"] / loop,
        "train_loss": losses[-1][1] if losses else None,
        "process_seconds": time.perf_counter() - t_start,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
