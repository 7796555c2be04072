"""twin: turn your own Telegram chats into a model that replies like you."""

import os

# Every entry point (the `twin` CLI, `import twin.serve.app`, any twin module) imports this first:
# no Hugging Face telemetry and no usage tracking, whichever library is loaded next.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

__version__ = "0.1.0"
