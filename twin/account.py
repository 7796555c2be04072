"""What an export knows about its owner's account, kept beside the dialog files.

``<raw>/<source>/account.json`` is ``{"owner": "user123", "phone_region": "LK"}``:

- ``owner``: whose chats these are (the account whose messages are ``"out"``). An export of another
  account into the same directory is refused: its chats would train one twin on two people.
- ``phone_region``: the region of the owner's own phone number (Telegram Desktop's
  ``personal_information.phone_number``, the API exporter's login phone). The number itself is never
  written: its region is all ``twin prepare`` needs, to read the national numbers of the owner's own
  country (written without their trunk prefix, "77 123 4567") as phones.

Each key is written once known and left as it is otherwise. The file is not a dialog (``.json``, not
``.jsonl``), so :func:`twin.records.dialog_files` skips it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from twin.errors import TwinError
from twin.fileio import atomic_write_json

ACCOUNT_FILE = "account.json"
_REGION = re.compile(r"[A-Z]{2}")


def phone_region(number: object) -> str | None:
    """The region of an international phone number ("+94 77 123 4567" -> "LK"), or None if unknown."""
    if not isinstance(number, str) or not re.search(r"\d", number):
        return None
    import phonenumbers as pn

    digits = number.strip()
    try:  # the API gives "94771234567", without the "+"
        num = pn.parse(digits if digits.startswith("+") else "+" + digits, None)
    except pn.NumberParseException:
        return None
    region = pn.region_code_for_number(num) if pn.is_possible_number(num) else None
    return region if region and _REGION.fullmatch(region) else None  # "001": not a country


def save_phone_region(source_dir: str | os.PathLike, number: object) -> str | None:
    """Record the region of ``number`` in ``<source_dir>/account.json`` (private); returns it, or None.

    Unknown number: nothing is written and an existing file is left as it is. The same region
    again: the file is left untouched (a re-import changes nothing).
    """
    region = phone_region(number)
    if region is not None:
        _record(Path(source_dir), "phone_region", region)
    return region


def check_owner(source_dir: str | os.PathLike, owner: str) -> None:
    """Refuse to add ``owner``'s chats to a directory that holds another account's (before any write)."""
    source_dir = Path(source_dir)
    recorded = _read(source_dir).get("owner")
    if not owner or not recorded or recorded == owner or not any(source_dir.glob("*.jsonl")):
        return
    raise TwinError(
        f"{source_dir}: holds the chats of another account ({recorded}) and this export is {owner}'s; "
        "one twin learns one person: export into a directory of its own (--out DIR; with make, "
        f"RAW=DIR, then `make prepare RAW=DIR`), or move {source_dir} away first"
    )


def save_owner(source_dir: str | os.PathLike, owner: str) -> None:
    """Record whose chats ``source_dir`` holds (``user<id>``), once known."""
    if owner:
        _record(Path(source_dir), "owner", owner)


def _read(source_dir: Path) -> dict:
    """``account.json`` as a dict; {} when missing or unreadable (it is rewritten whole then)."""
    try:
        obj = json.loads((source_dir / ACCOUNT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _record(source_dir: Path, key: str, value: str) -> None:
    content = _read(source_dir)
    if content.get(key) == value:
        return  # a re-import leaves the file untouched
    atomic_write_json(source_dir / ACCOUNT_FILE, {**content, key: value})


def account_regions(raw_root: str | os.PathLike) -> list[str]:
    """The owners' phone regions recorded under ``raw_root`` (one per source that knows it)."""
    regions: list[str] = []
    for path in sorted(Path(raw_root).glob(f"*/{ACCOUNT_FILE}")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TwinError(
                f"{path}: not readable JSON ({e}); delete it and import the export again"
            ) from None
        if isinstance(obj, dict) and "phone_region" not in obj:
            continue  # only the owner is known
        region = obj.get("phone_region") if isinstance(obj, dict) else None
        if not (isinstance(region, str) and _REGION.fullmatch(region)):
            raise TwinError(
                f"{path}: field 'phone_region' must be a two-letter region such as \"LK\"; "
                "delete the file and import the export again"
            )
        if region not in regions:
            regions.append(region)
    return regions
