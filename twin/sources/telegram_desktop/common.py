"""Names and small helpers every part of the Desktop importer uses."""

from __future__ import annotations

from typing import Any

SOURCE = "telegram"


PERSONAL = "personal_chat"


GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})


HOW_TO_EXPORT = (
    "export it from Telegram Desktop: Settings > Advanced > Export Telegram data, "
    "format 'Machine-readable JSON'"
)
# An HTML export (messages.html, export_results.html) has no machine-readable data to import.
HTML_EXPORT = (
    "a Telegram Desktop HTML export, which twin cannot read: export again choosing Format "
    "'Machine-readable JSON' (chat menu > Export chat history, or Settings > Advanced > Export Telegram "
    "data) and pass its result.json"
)


# Message keys Desktop writes for media that has no ``media_type``; first match names the media.
# Every media of export_output_json.cpp's SerializeMessage is here, so none is miscounted as
# ``empty``: a venue Desktop could not place has ``place_name`` without ``location_information``;
# to-do lists and paid media are ``other``, as the API exporter names them.
MEDIA_KEYS = (
    ("photo", "photo"),
    ("file", "file"),
    ("location_information", "location"),
    ("place_name", "location"),
    ("contact_information", "contact"),
    ("poll", "poll"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
    ("giveaway_information", "giveaway"),
    ("giveaway_results", "giveaway"),
    ("todo_list", "other"),
    ("paid_stars_amount", "other"),
)


def wanted(chat_type: str, include_groups: bool) -> bool:
    return chat_type == PERSONAL or (include_groups and chat_type in GROUP_TYPES)


def kind(value: Any) -> str:
    if value is None:
        return "null / missing"
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)
