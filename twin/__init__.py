"""twin: turn your own Telegram chats into a model that replies like you."""

__version__ = "0.1.0"
