"""twin: turn your own Telegram chats into a model that replies like you."""

import os
import sys

# USE_HUB_KERNELS: transformers (5.x, with its `kernels` dependency) swaps layers of every model it
# loads for compiled kernels it downloads from the hub when the device has any (Llama's and Qwen's
# RMSNorm on CUDA, ...): a connection from `twin train` and native code nobody here chose or tested.
TELEMETRY_OFF = {"HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "USE_HUB_KERNELS": "0"}


def no_phone_home(*, offline: bool = False) -> None:
    """No Hugging Face telemetry, usage tracking or hub kernels; with ``offline``, no hub calls at all.

    The one place these variables are set (a value the user set wins). Call it before the library
    that reads them is imported.
    """
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


# Every entry point (the `twin` CLI, `import twin.serve.app`, any twin module) imports this first,
# so telemetry is off whichever library is loaded next.
no_phone_home()

# bitsandbytes serves only QLoRA on CUDA (`quantize: nf4|int8`), but peft imports it whenever it is
# installed, and on a CPU with AVX-512 BF16 that import asks the Hugging Face hub for a kernel (and
# logs "Failed to load CPU gemm_4bit_forward" when it cannot). Hidden (an import of it fails, so
# peft and transformers see it as absent) until `twin.model.load.check_quantize` lets it in.
sys.modules.setdefault("bitsandbytes", None)  # type: ignore[arg-type]


def allow_bitsandbytes() -> None:
    """Un-hide bitsandbytes (a command asked for QLoRA), and drop the libraries' cached "absent"."""
    if "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None:
        del sys.modules["bitsandbytes"]
    for module, check in (
        ("transformers.utils.import_utils", "is_bitsandbytes_available"),
        ("peft.import_utils", "is_bnb_available"),
        ("peft.import_utils", "is_bnb_4bit_available"),
    ):
        cached = getattr(sys.modules.get(module), check, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


__version__ = "0.1.0"
