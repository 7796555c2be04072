"""``twin drafts``: the twin inside Telegram, writing its suggested reply into the chat's draft.

Telegram ↔ this process ↔ your ``twin serve`` (HTTP): nothing else is contacted. Nothing heavy is
imported here (no torch, no transformers); telethon and httpx load when the command runs.
"""
