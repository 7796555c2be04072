"""``twin publish merge``: fold the LoRA adapter into the base weights, save a plain HF model dir.

The result (``config.json``, ``model*.safetensors`` sharded by ``max_shard_size``, tokenizer
files) loads with ``AutoModelForCausalLM.from_pretrained`` alone — no twin, no peft — and is the
input of ``twin publish gguf``. ``twin_merged.json`` records where it came from and the prompt
template the twin expects (a model dir, unlike an adapter, has nowhere else to say it).
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from twin.errors import TwinError
from twin.fileio import atomic_dir

log = logging.getLogger(__name__)

MERGED_META = "twin_merged.json"
# What transformers' save_pretrained takes as a shard size (huggingface_hub's parse_size_to_int).
_SHARD_SIZE = re.compile(r"\s*\d+(\.\d+)?\s*[KMGT]B\s*", re.IGNORECASE)


def check_merge_options(max_shard_size: str, dtype: str) -> None:
    """One line naming the option before the model loads: a bad shard size was huggingface_hub's
    ``ValueError`` traceback after the whole load and merge, a bad dtype an error naming no option."""
    from twin.model.load import DTYPE_CHOICES

    if not _SHARD_SIZE.fullmatch(max_shard_size) or float(re.sub(r"[^\d.]", "", max_shard_size)) <= 0:
        raise TwinError(
            f"--max-shard-size {max_shard_size}: use a size such as 500MB, 2GB or 5GB (KB, MB, GB, TB)"
        )
    if dtype != "auto" and dtype.lower() not in DTYPE_CHOICES:
        raise TwinError(f"--dtype {dtype}: unknown; use auto, float32, bfloat16 or float16")


def merge_adapter(
    base: str | os.PathLike | None,
    adapter: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_shard_size: str = "2GB",
    dtype: str = "auto",
    force: bool = False,
) -> Path:
    """Merge ``adapter`` into ``base`` (default: the base recorded in twin.json) and save to ``out``."""
    from twin.adapter_meta import read_meta
    from twin.model.load import bars_if_big, base_fingerprint, load_base, resolve_base

    check_merge_options(max_shard_size, dtype)
    adapter = Path(adapter)
    meta = read_meta(adapter)
    base = resolve_base(adapter, base, meta)
    out = Path(out)
    check_out_spares(out, {"adapter": adapter, "base": Path(base)})
    if out.exists() and not force and any(out.iterdir()) and not (out / MERGED_META).is_file():
        raise TwinError(f"{out}: exists and is not a twin merge output; pick an empty --out or pass --force")
    from peft import PeftModel

    model, tokenizer = load_base(base, dtype=dtype)
    try:
        model = PeftModel.from_pretrained(model, str(adapter))
    except (OSError, ValueError) as e:
        raise TwinError(f"{adapter}: could not load the adapter ({str(e).splitlines()[0]})") from None
    # safe_merge: check for NaNs before overwriting the base weights.
    merged = model.merge_and_unload(safe_merge=True)
    with atomic_dir(out) as tmp, bars_if_big(Path(base)):
        merged.save_pretrained(tmp, max_shard_size=max_shard_size)
        tokenizer.save_pretrained(tmp)
        info = {
            "format": 1,
            "merged_from": {
                "base": str(base),
                "base_fingerprint": base_fingerprint(base),
                "adapter": str(adapter),
            },
            "template": meta.template,
            "prepare": meta.prepare,
            "model_type": merged.config.model_type,
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        (tmp / MERGED_META).write_text(
            json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    log.info("merged %s into %s -> %s", adapter, base, out)
    return out


def check_out_spares(out: Path, inputs: dict[str, Path]) -> None:
    """``--out`` must not be, or hold, an input: the output dir is replaced as a whole, so ``--out``
    the adapter's dir with ``--force`` replaced the trained adapter with the merged model."""
    target = out.resolve()
    for what, path in inputs.items():
        if path.resolve().is_relative_to(target):
            raise TwinError(
                f"--out {out}: is or holds the {what} dir ({path}), which the merged model would replace; "
                "pick another --out"
            )


def read_merged_meta(model_dir: str | os.PathLike) -> dict:
    """``twin_merged.json`` of a merged dir, or ``{}`` for any other HF model dir."""
    f = Path(model_dir) / MERGED_META
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except ValueError as e:
        raise TwinError(f"{f}: not valid JSON ({e}); re-run `twin publish merge`") from None
    return data if isinstance(data, dict) else {}
