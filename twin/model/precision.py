"""``precision: auto`` (training) and ``--dtype auto`` (serving): the fastest precision that fits.

The rules, in order (``decide`` is the whole policy; ``detect`` reads the machine):

1. CUDA GPU with bf16 support (Ampere and newer): ``bf16-true``.
2. CUDA GPU without bf16 (Turing, Volta): ``16-true``.
3. CPU with native bf16 instructions (AVX-512 BF16 or AMX, from /proc/cpuinfo or torch): ``bf16-true``,
   unless the model is narrow (hidden size below ``NARROW_WIDTH``) and its float32 weights fit: then
   ``32-true``, because bf16's CPU kernels only pay on wide matrices (bench/RESULTS.md, "Precision auto
   by width": on an AMX Xeon a width-128 base trains 1.4-1.9x faster in float32, width 512 1.2x faster
   in bf16, a Falcon-7B cut 2.1x faster in bf16).
4. Other CPUs emulate bf16 (an order of magnitude slower), so ``32-true`` when the float32 weights
   of every process fit: ``devices x 4 bytes x parameters x 1.2 + 1 GiB <= available RAM``
   (MemAvailable; the 20% and 1 GiB cover activations, adapter, optimizer and the runtime);
5. otherwise ``bf16-true``, with a warning that it will be slow.

Parameters are counted from the safetensors headers (shapes), the width read from ``config.json``,
without loading anything.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

FIT_MARGIN, FIT_RESERVE = 1.2, 2**30
NARROW_WIDTH = 512  # hidden sizes below it run faster in float32 even where bf16 is native
DTYPE_OF = {"bf16-true": "bfloat16", "16-true": "float16", "32-true": "float32"}


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    cuda_bf16: bool = False
    cuda_name: str = ""
    cpu_bf16: bool = False  # native: AVX-512 BF16 or AMX
    available_bytes: int | None = None  # RAM free for this run; None: unknown


@dataclass(frozen=True)
class Choice:
    precision: str  # a Fabric precision: bf16-true | 16-true | 32-true
    reason: str
    slow: bool = False  # bf16 without native support: warn

    @property
    def dtype(self) -> str:
        return DTYPE_OF[self.precision]


def choose_precision(base: str | os.PathLike, accelerator: str = "auto", devices: int = 1) -> Choice:
    """The precision for ``base`` on this machine (see the module docstring)."""
    return decide(detect(accelerator), parameter_count(base), devices, model_width(base))


def decide(hw: Hardware, params: int, devices: int = 1, width: int | None = None) -> Choice:
    if hw.cuda:
        if hw.cuda_bf16:
            return Choice("bf16-true", f"GPU {hw.cuda_name} supports bf16")
        return Choice("16-true", f"GPU {hw.cuda_name} has no bf16: float16")
    need = devices * (4 * params * FIT_MARGIN) + FIT_RESERVE
    fits = hw.available_bytes is None or need <= hw.available_bytes
    if hw.cpu_bf16:
        if width is not None and width < NARROW_WIDTH and fits:
            return Choice(
                "32-true",
                f"CPU has native bf16, but the model is narrow (hidden size {width} < {NARROW_WIDTH}): "
                "float32 is faster there",
            )
        return Choice("bf16-true", "CPU has native bf16 (AVX-512 BF16 or AMX)")
    gib = f"{need / 2**30:.1f} GiB"
    if fits:
        have = "" if hw.available_bytes is None else f" of {hw.available_bytes / 2**30:.1f} GiB available"
        return Choice("32-true", f"CPU without native bf16; float32 weights fit ({gib}{have})")
    return Choice(
        "bf16-true",
        f"CPU without native bf16 and float32 weights do not fit ({gib} needed, "
        f"{hw.available_bytes / 2**30:.1f} GiB available): bf16 is emulated, expect it to be slow",
        slow=True,
    )


def detect(accelerator: str = "auto") -> Hardware:
    import torch

    if accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available():
        return Hardware(True, torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))
    return Hardware(False, cpu_bf16=cpu_has_native_bf16(), available_bytes=available_memory())


def cpu_has_native_bf16() -> bool:
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    if flags & {"avx512_bf16", "amx_bf16"}:
        return True
    import torch

    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, p, lambda: False)()) for p in probes)


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def model_width(base: str | os.PathLike) -> int | None:
    """The hidden size from the base's ``config.json`` (a multimodal config's text part); None if unknown."""
    try:
        cfg = json.loads((Path(base) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for c in (cfg, cfg.get("text_config") or {}):
        for key in ("hidden_size", "n_embd", "d_model"):
            if isinstance(c.get(key), int):
                return c[key]
    return None


def parameter_count(base: str | os.PathLike) -> int:
    """Parameters of a base dir from its safetensors headers (else weight bytes / 2: bf16 files)."""
    total = 0
    for f in sorted(Path(base).glob("*.safetensors")):
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    if total:
        return total
    return sum(f.stat().st_size for f in Path(base).glob("pytorch_model*.bin")) // 2
