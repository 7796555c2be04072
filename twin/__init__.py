"""twin: turn your own Telegram chats into a model that replies like you."""

import os

TELEMETRY_OFF = {"HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def no_phone_home(*, offline: bool = False) -> None:
    """No Hugging Face telemetry or usage tracking; with ``offline``, no hub calls at all.

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

__version__ = "0.1.0"
