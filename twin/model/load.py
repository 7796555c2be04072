"""Load a base model directory (any local Hugging Face causal LM) and find the base an adapter runs on.

The same code loads the tiny Falcon used by tests and the demo and a downloaded Falcon-7B: a
directory with ``config.json``, weights and tokenizer files. Every problem a user can cause
(wrong path, missing weights, quantization without a GPU) is a :class:`TwinError` raised *before*
anything heavy is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta

log = logging.getLogger(__name__)

# Files that identify a base besides its weights: its architecture and its tokenizer.
FINGERPRINT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")  # the tensors themselves
_WEIGHT_GLOBS = (*_WEIGHT_FILES, "model.safetensors.index.json")
FINGERPRINT_PREFIX = "v2:sha256:"  # v2: config, tokenizer and weights; "sha256:" (v1): no weights
QUANTIZE_CHOICES = ("nf4", "int8")
# Below this much weight on disk a load takes well under a second: transformers' "Loading weights"
# bar would only flash in the log.
_QUIET_LOAD_BYTES = 1 << 30
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "16": "float16",
}
DTYPE_CHOICES = frozenset(_DTYPES)


def check_base_dir(path: str | os.PathLike) -> Path:
    """Raise a one-line TwinError unless ``path`` looks like a loadable HF model directory."""
    p = Path(path)
    hint = (
        "build one with `make tiny` (`twin model tiny --out DIR`) or fetch one with "
        "`make download MODEL=REPO` (`twin model download REPO`)"
    )
    if not p.exists():
        raise TwinError(f"{p}: base model directory not found; {hint}")
    if not p.is_dir():
        raise TwinError(f"{p}: base model must be a directory (config.json + weights + tokenizer); {hint}")
    if not (p / "config.json").is_file():
        raise TwinError(f"{p}: no config.json, so this is not a Hugging Face model directory; {hint}")
    try:
        json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TwinError(
            f"{p / 'config.json'}: not valid JSON ({e}); re-download or rebuild the base"
        ) from None
    if not any(any(p.glob(g)) for g in _WEIGHT_GLOBS):
        raise TwinError(
            f"{p}: no weights (*.safetensors or pytorch_model*.bin); the download may be incomplete, "
            "re-run `twin model download` or `twin model tiny`"
        )
    if not any((p / f).is_file() for f in _TOKENIZER_FILES):
        raise TwinError(
            f"{p}: no tokenizer files (tokenizer.json, tokenizer.model or vocab.json); "
            "copy the tokenizer into the model directory or re-download it"
        )
    return p


def prefer_passive_omp_wait() -> None:
    """Make OpenMP threads sleep rather than spin while waiting; call before torch is imported.

    Spinning is OpenMP's default: on a busy CPU (shared machines, a server next to the trainer) two
    torch threads then run ~10x slower than one. Passive waiting removes that cliff at no cost on an
    idle machine. Child processes (DDP workers) inherit it through the environment.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def choose_omp_wait(load: float | None = None, cores: int | None = None, rivals: float | None = None) -> str:
    """Training's OpenMP wait policy, chosen by how busy the machine is; call before torch is imported.

    Measured (bench/RESULTS.md, training speed): on an idle machine OpenMP's default (spin a little,
    then sleep) trains ~1.2x faster than ``PASSIVE``; next to jobs of the same priority, spinning
    threads fight them for the cores and ``PASSIVE`` wins (up to ~8x); next to jobs at a lower
    priority (``nice``), the scheduler hands the cores to twin anyway and spinning wins again
    (~1.7x). So: 1-minute load average below half the cores -> the default; else the CPU time of
    jobs at twin's priority or above over 0.1 s (``rivals``, in cores) decides the same way. An
    ``OMP_WAIT_POLICY`` already set is kept. Returns the reason.
    """
    if os.environ.get("OMP_WAIT_POLICY"):
        return f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (set outside twin)"
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this platform: the safe choice
            load = float(cores)
    if load < 0.5 * cores:
        return f"OpenMP default wait (load average {load:.1f} on {cores} cores: idle)"
    if rivals is None:
        rivals = rival_cores()
    if rivals is not None and rivals < 0.5 * cores:
        return (
            f"OpenMP default wait (load average {load:.1f} on {cores} cores, but jobs at twin's "
            f"priority or above use {rivals:.1f}: the rest run niced)"
        )
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return f"OMP_WAIT_POLICY=PASSIVE (load average {load:.1f} on {cores} cores: busy)"


def rival_cores(interval: float = 0.1) -> float | None:
    """Cores' worth of CPU time taken over ``interval`` by jobs that twin's threads cannot preempt.

    From ``/proc/stat`` (None where there is none): user + system time, plus niced time when twin
    itself runs niced (then those jobs are its equals or betters).
    """
    try:
        with open("/proc/stat") as f:
            before = f.readline()
        time.sleep(interval)
        with open("/proc/stat") as f:
            after = f.readline()
    except OSError:
        return None
    return cpu_rivals(before, after, os.cpu_count() or 1, niced=os.getpriority(os.PRIO_PROCESS, 0) > 0)


def cpu_rivals(before: str, after: str, cores: int, *, niced: bool) -> float:
    """From two ``cpu`` lines of /proc/stat: cores busy with user/system (and niced, if ``niced``) work."""
    a = [int(x) for x in before.split()[1:9]]
    b = [int(x) for x in after.split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (y - x for x, y in zip(a, b, strict=True))
    total = sum(y - x for x, y in zip(a, b, strict=True))
    if total <= 0:
        return 0.0
    busy = user + system + irq + softirq + steal + (nice if niced else 0)
    return cores * busy / total


def check_quantize(
    quantize: str | None,
    device: str = "auto",
    *,
    name: str = "quantize",
    instead: str = "set quantize: null to train in full precision on this machine",
) -> None:
    """QLoRA needs bitsandbytes kernels, which need CUDA: fail before any loading work.

    ``name`` is how the user set it (``quantize`` in a recipe, ``--quantize`` on the server) and
    ``instead`` what to do without a GPU, so the one-line error names the user's own knob.
    """
    if quantize in (None, "", "none"):
        return
    if quantize not in QUANTIZE_CHOICES:
        raise TwinError(f"{name}: {quantize!r} is unknown; use one of {', '.join(QUANTIZE_CHOICES)} or none")
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        raise TwinError(
            f"{name}: {quantize} (QLoRA) needs a CUDA GPU for bitsandbytes and none is available here; {instead}"
        )
    from twin import allow_bitsandbytes

    allow_bitsandbytes()  # hidden by default (twin/__init__.py): only QLoRA needs it


def model_type(path: str | os.PathLike) -> str:
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    return str(cfg.get("model_type") or "unknown")


def base_fingerprint(path: str | os.PathLike) -> str:
    """Stable identity of a base dir: its config, tokenizer and weights (``v2:sha256:`` + 16 hex).

    The weights enter through ``model/fingerprint.weights_digest`` (headers and samples of every
    tensor, cached by size+mtime), so a 14 GB base costs milliseconds after the first time.
    """
    from twin.model.fingerprint import weights_digest

    p = check_base_dir(path)
    h = hashlib.sha256(_files_digest(p).encode())
    for f in weight_files(p):
        h.update(f"\0{weights_digest(f)}".encode())
    return FINGERPRINT_PREFIX + h.hexdigest()[:16]


def legacy_fingerprint(path: str | os.PathLike) -> str:
    """The v1 fingerprint (config and tokenizer only) that adapters trained before v2 record."""
    return "sha256:" + _files_digest(check_base_dir(path))[:16]


def _files_digest(p: Path) -> str:
    h = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        f = p / name
        if f.is_file():
            h.update(name.encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def fingerprint_matches(recorded: str | None, base: str | os.PathLike, where: str = "adapter") -> bool:
    """Whether ``base`` is the base a ``recorded`` fingerprint names (no record: nothing to check).

    A v1 record (``sha256:``, from before weights were fingerprinted) is checked the v1 way, with a
    warning that the weights are not covered.
    """
    if not recorded:
        return True
    if recorded.startswith(FINGERPRINT_PREFIX):
        return recorded == base_fingerprint(base)
    if recorded != legacy_fingerprint(base):
        return False
    log.warning(
        "%s: recorded with an older base fingerprint that covers config and tokenizer, not weights; "
        "retrain it to have the weights checked too",
        where,
    )
    return True


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype == "auto":
        return "auto"
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise TwinError(f"dtype {dtype!r} is unknown; use auto, float32, bfloat16 or float16")
    return getattr(torch, name)


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The base's tokenizer, with a pad token (Falcon-7B ships without one: pad = eos)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.eos_token is None:
        raise TwinError(f"{path}: the tokenizer has no EOS token; twin needs one to teach the model to stop")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(
    path: str | os.PathLike,
    *,
    dtype: str = "auto",
    quantize: str | None = None,
    device: str = "cpu",
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local HF causal-LM directory (Falcon-7B, the tiny Falcon, Llama...).

    ``dtype``: auto (the checkpoint's own dtype), float32, bfloat16 or float16. ``quantize``: nf4 or
    int8 via bitsandbytes, CUDA only (a clear error otherwise, before loading).
    """
    p = check_base_dir(path)
    check_quantize(quantize)
    torch_dtype = _torch_dtype(dtype)
    from transformers import AutoModelForCausalLM

    from twin.model.peft_compat import patch_trainable_tokens

    patch_trainable_tokens()  # adapters with embedding rows beside plain ones (twin serve)

    tokenizer = load_tokenizer(p)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if quantize in QUANTIZE_CHOICES:
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch_dtype == "auto" else torch_dtype
        if quantize == "nf4":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": device if device != "cpu" else "cuda"}
    try:
        with bars_if_big(p):
            model = AutoModelForCausalLM.from_pretrained(str(p), **kwargs)
    except (OSError, ValueError) as e:
        raise TwinError(f"{p}: could not load the model ({str(e).splitlines()[0]})") from None
    if quantize not in QUANTIZE_CHOICES and device != "cpu":
        model.to(device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def weight_files(path: Path) -> list[Path]:
    """The files holding a base directory's tensors, safetensors first, each kind in name order."""
    return [f for pattern in _WEIGHT_FILES for f in sorted(path.glob(pattern))]


def weight_bytes(path: Path) -> int:
    """Bytes of the weight files in a base directory."""
    return sum(f.stat().st_size for f in weight_files(path))


@contextmanager
def hf_progress_bars(show: bool):
    """transformers' own progress bars on or off for a block, the user's setting restored after it."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if shown and not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def bars_if_big(path: Path):
    """transformers' loading and writing bars only for a checkpoint big enough to take a while."""
    return hf_progress_bars(weight_bytes(path) >= _QUIET_LOAD_BYTES)


def resolve_base(
    adapter_dir: str | os.PathLike, base: str | os.PathLike | None = None, meta: AdapterMeta | None = None
) -> Path:
    """The base model an adapter runs on: ``base`` if given, else the path its twin.json records.

    Either way the directory must exist and carry the fingerprint the adapter was trained on, so an
    adapter is never silently applied to another model. ``meta``: the twin.json already read.
    """
    from twin.adapter_meta import read_meta

    adapter = Path(adapter_dir)
    meta = meta if meta is not None else read_meta(adapter)
    base_str = str(base or meta.base_model.path or "")
    if not base_str or not Path(base_str).exists():
        raise TwinError(
            f"{adapter / 'twin.json'}: base model {base_str!r} not found; "
            "pass --base DIR (the base the adapter was trained on)"
        )
    want = meta.base_model.fingerprint
    if not fingerprint_matches(want, base_str, str(adapter / "twin.json")):
        have = base_fingerprint(base_str)
        # no --base: the recorded directory itself changed since training (`make tiny` again writes
        # over it), and the base the adapter needs is most likely gone: training again is the way out
        rebuilt = (
            f"; the base at that path changed since training (rebuilt, e.g. by `make tiny`?): train again, "
            f"`make train RUN={adapter.name}`, or pass the base it was trained on with --base"
            if base is None
            else "; pass the base it was trained on with --base"
        )
        raise TwinError(
            f"{adapter / 'twin.json'}: adapter was trained on a different base ({want}) than {base_str} "
            f"({have}){rebuilt}"
        )
    return Path(base_str)
