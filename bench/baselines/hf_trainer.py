"""Baseline: LoRA fine-tuning the way most tutorials do it — transformers ``Trainer`` + peft.

The recipe (as in the peft / transformers causal-LM fine-tuning tutorials): load the model with
``AutoModelForCausalLM``, wrap it with ``get_peft_model(LoraConfig(...))``, tokenize every
example into ``input_ids`` + ``labels`` (prompt masked with -100), pad per batch with
``DataCollatorForSeq2Seq``, and call ``Trainer.train()`` with ``TrainingArguments``. Everything the
comparison holds equal is passed in: the same examples rendered by ``twin/prompt.py`` with the same
template (``plain-v1``, or ``chat-v1`` through the tokenizer's chat template: identical text and
token ids; EOS appended to the reply unless the template already ends it with its end-of-turn
token; loss on the completion only), the LoRA target modules, r/alpha/dropout, sequence length,
micro-batch, gradient accumulation, fp32, optimizer steps, AdamW learning rate / weight decay /
clipping, and the cosine schedule with the same warmup.

Everything else is the Trainer's default (random batch order, ``adamw_torch_fused``, no workers),
unless one of the speed settings a user may set is given: ``--sampling group_by_length`` (the
Trainer's ``LengthGroupedSampler``; ``group_by_length=True`` of transformers 4.x),
``--workers N`` (DataLoader worker processes), ``--torch-compile``.

Run (main venv): ``python -m bench.baselines.hf_trainer --base DIR --data DIR --out DIR --steps N ...``.
Writes ``<out>/result.json``: real (non-padding) and padded tokens of the batches trained on,
training-loop seconds, last train loss.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

IGNORE = -100
SAMPLING = ("random", "group_by_length", "batch_rebalance")


def tokenize_examples(rows: list[dict], tokenizer, max_len: int, template: str = "plain-v1") -> list[dict]:
    """input_ids = prompt + completion (+ EOS); labels mask the prompt; cut at ``max_len``."""
    from twin.prompt import build_training_pair

    eos = tokenizer.eos_token_id
    out = []
    for row in rows:
        prompt, completion = build_training_pair(row, template=template, tokenizer=tokenizer)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if not r or r[-1] != eos:  # chat templates end the reply with their end-of-turn token
            r = [*r, eos]
        ids = (p + r)[:max_len]
        labels = ([IGNORE] * len(p) + r)[:max_len]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    ap.add_argument("--target-modules", default="query_key_value", help="comma-separated module names")
    ap.add_argument("--template", default="plain-v1", choices=("plain-v1", "chat-v1"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sampling", default="random", choices=SAMPLING, help="train_sampling_strategy")
    ap.add_argument("--workers", type=int, default=0, help="dataloader_num_workers")
    ap.add_argument("--torch-compile", action="store_true")
    return ap.parse_args(argv)


def load_model(a: argparse.Namespace):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(a.base)
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    lora = LoraConfig(
        r=a.lora_r,
        lora_alpha=a.lora_alpha,
        lora_dropout=a.lora_dropout,
        target_modules=a.target_modules.split(","),
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, lora)


def training_args(a: argparse.Namespace, out: Path):
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
        train_sampling_strategy=a.sampling,
        dataloader_num_workers=a.workers,
        dataloader_persistent_workers=a.workers > 0,
        torch_compile=a.torch_compile,
    )


def train(a: argparse.Namespace, tokenizer, model, dataset: list[dict], out: Path) -> dict:
    """Trainer.train(); the batches it trains on are counted in the training process itself."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback

    counted = {"real_tokens": 0, "padded_tokens": 0}
    clock: dict[str, float] = {}
    losses: list[tuple[int, float]] = []

    class Counting(Trainer):
        # Here, not in the collator: with DataLoader workers the collator runs in other processes,
        # and prefetched batches that are never trained on must not count.
        def training_step(self, model, inputs, *args, **kwargs):
            counted["real_tokens"] += int(inputs["attention_mask"].sum())
            counted["padded_tokens"] += inputs["input_ids"].numel()
            return super().training_step(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock["begin"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            clock["end"] = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    trainer = Counting(
        model=model,
        args=training_args(a, out),
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.train()
    loop = clock["end"] - clock["begin"]
    return {
        **counted,
        "loop_seconds": loop,
        "tokens_per_s": counted["real_tokens"] / loop,
        "train_loss": losses[-1][1] if losses else None,
    }


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tokenizer, model = load_model(a)
    rows = [
        json.loads(line) for line in (Path(a.data) / "train.jsonl").open(encoding="utf-8") if line.strip()
    ]
    dataset = tokenize_examples(rows, tokenizer, a.max_seq_length, a.template)
    figures = train(a, tokenizer, model, dataset, out)
    model.save_pretrained(out / "adapter")
    settings = {"sampling": a.sampling, "workers": a.workers, "torch_compile": a.torch_compile}
    result = {"tool": "trainer", "steps": a.steps, **figures, "settings": settings}
    result["process_seconds"] = time.perf_counter() - t_start
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
