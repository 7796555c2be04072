"""Where `twin train` spends its time: sample it with py-spy, fold the stacks into phases.

py-spy (installed in ``.venv-bench``; it attaches from outside, so the profiled process is the
plain ``twin train`` command) records ``--format raw`` collapsed stacks, one
``frame;frame;... count`` line per distinct stack. Each sample is attributed to the first phase
(checked in the order below) that any of its frames matches, so a tokenizer call made while
loading data counts as tokenization, not as start-up. Idle samples (threads waiting) are dropped
with ``--idle`` off, so shares are of CPU-busy time of the main thread and its helpers.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

# (phase, regex over one frame "function (file:line)"). Order matters: first match wins.
PHASES: tuple[tuple[str, str], ...] = (
    ("imports", r"_find_and_load|_call_with_frames_removed \(<frozen importlib"),
    (
        "tokenization",
        r"encode_examples|_refit_prompt|\b_tok\b|tokenization_utils|tokenizers|build_training_pair",
    ),
    ("collation + batching", r"\bcollate\b|_collate|make_batches|count_targets|_targets|padding_fraction"),
    ("validation", r"_evaluate"),
    (
        "checkpoint + adapter save",
        r"checkpoint \(|save_adapter|save_pretrained|fabric.*\bsave\b|_replace_path|atomic",
    ),
    ("logging + progress", r"tqdm|write_metrics|tensorboard|\blog_metrics\b|logging/__init__|rich/"),
    (
        "optimizer step",
        r"optim/adamw|optim/optimizer|clip_gradients|clip_grad_norm|_multi_tensor_adamw|\bstep \(.*lr_scheduler",
    ),
    ("backward", r"backward|_engine_run_backward|run_backward"),
    ("forward (model + loss)", r"modeling_falcon|ResponseLoss|peft/tuners|cross_entropy|\bforward \("),
    ("model load + LoRA setup", r"load_base|from_pretrained|get_peft_model|apply_lora|fabric.*setup"),
)


def record(cmd: list[str], out: Path, py_spy: Path, rate: int = 100) -> Path:
    """Run ``cmd`` under py-spy; returns the collapsed-stack file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    full = [
        str(py_spy),
        "record",
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--subprocesses",
        "--",
        *cmd,
    ]
    subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def fold(collapsed: Path) -> dict[str, float]:
    """Share of samples per phase (plus ``other``), from a py-spy raw file."""
    counts: Counter[str] = Counter()
    rules = [(name, re.compile(rx)) for name, rx in PHASES]
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        phase = "other"
        for name, rx in rules:
            if any(rx.search(f) for f in frames):
                phase = name
                break
        counts[phase] += int(n)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.most_common()}


def top_frames(collapsed: Path, n: int = 15) -> list[tuple[str, float]]:
    """The leaf frames (self time) with the most samples."""
    counts: Counter[str] = Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, k = line.rpartition(" ")
        if stack and k.isdigit():
            counts[stack.split(";")[-1]] += int(k)
    total = sum(counts.values()) or 1
    return [(f, c / total) for f, c in counts.most_common(n)]
