"""The adapter record: ``twin.json``, written next to every adapter, as one typed class.

``twin train`` writes it (``twin/train/artifacts.py``), the preference stage adds its ``prefs``
record, and every stage that runs an adapter (serve, eval, publish, prefs) reads it through
:func:`read_meta`, so a malformed file is one clear line (file, field, fix; exit 2) before anything
slow loads, and nobody re-derives what training recorded: the prompt budget is the
:class:`twin.examples.PromptBudget` training fitted every prompt to, the context pre-cut is
prepare's :class:`twin.examples.ContextSettings`.

Format 1 is the only format so far; older files of it lack fields added later and are upgraded on
read (:func:`_upgrade`): no ``budget`` (prompts were only cut to fit the model: stays None), no
``memory.scope`` (``contact``), no ``memory.dir`` (``memory``), a ``prepare`` record without
``max_context_tokens`` (256, prepare's default until the budget was recorded).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin.errors import TwinError
from twin.examples import ContextSettings, PromptBudget
from twin.fileio import atomic_write_json

FILE = "twin.json"
FORMAT = 1
_RETRAIN = "retrain the adapter (or restore its twin.json)"
_LEGACY_CONTEXT_TOKENS = 256  # prepare's max_context_tokens default before "budget" was recorded
_OPTIONAL = ("budget", "precision", "created", "memory", "prefs")  # left out of the file when unset


class _Record(BaseModel):
    # Unknown keys are kept (a newer twin's additions survive a round trip through an older one).
    model_config = ConfigDict(extra="allow", protected_namespaces=(), allow_inf_nan=False)


class BaseRecord(_Record):
    """The base the adapter was trained on: where it was, and what it was (``twin.model.load`` fingerprint)."""

    path: str | None = None
    fingerprint: str
    model_type: str | None = None


class MemoryRecord(_Record):
    """``--memory K``: the past exchanges copied into the adapter (``dir``) and whose a prompt may see."""

    k: int = Field(0, ge=0)
    dir: str = "memory"
    scope: Literal["contact", "all"] = "contact"


class AdapterMeta(_Record):
    """What an adapter needs to be served as it was trained (and what its training measured)."""

    format: Literal[1] = FORMAT
    base_model: BaseRecord
    template: str = Field(min_length=1)
    prepare: dict[str, Any]  # prepare's settings as stats.json recorded them (its ContextSettings and more)
    budget: PromptBudget | None = None  # tokens of the base; None: trained before it was recorded
    train: dict[str, Any]  # the TrainConfig, dumped
    precision: dict[str, Any] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    memory: MemoryRecord | None = None
    prefs: dict[str, Any] | None = None  # the preference stage, when it ran (twin/train/prefs.py)

    @property
    def context(self) -> ContextSettings:
        """Prepare's context pre-cut (budget and unit), the settings object prepare itself used."""
        return _context(self.prepare, FILE)

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt budget in tokens of the base (``budget.prompt_tokens``); None for older adapters."""
        return self.budget.prompt_tokens if self.budget else None

    def trained(self, key: str, default: Any = None) -> Any:
        """A ``data:`` setting the adapter was trained with (``train.data.<key>``)."""
        data = self.train.get("data")
        return data.get(key, default) if isinstance(data, dict) else default

    def to_json(self) -> dict[str, Any]:
        """The file's content (unset optional records left out, as older twins wrote them)."""
        out = self.model_dump(mode="json")
        return {k: v for k, v in out.items() if not (k in _OPTIONAL and v is None)}

    def write(self, adapter_dir: str | os.PathLike) -> Path:
        """``adapter_dir/twin.json``, written atomically."""
        path = Path(adapter_dir) / FILE
        atomic_write_json(path, self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str | os.PathLike = FILE) -> AdapterMeta:
        """Validated (and upgraded) from a parsed ``twin.json``; TwinError naming ``where`` and the field."""
        if not isinstance(data, dict):
            raise TwinError(f"{where}: expected a JSON object; {_RETRAIN}")
        if data.get("format") != FORMAT:
            raise TwinError(
                f"{where}: format {data.get('format')!r} is not supported (expected {FORMAT}); {_RETRAIN}"
            )
        for key in ("base_model", "template", "prepare", "train"):
            if key not in data:
                raise TwinError(f"{where}: field '{key}' is missing; {_RETRAIN}")
        try:
            meta = cls.model_validate(_upgrade(data))
        except ValidationError as e:
            raise TwinError(f"{where}: {_first_error(e)}; {_RETRAIN}") from None
        _check_computed(meta, data, where)
        _context(meta.prepare, where)  # checked now, not at the first request
        return meta

    @classmethod
    def untrained(cls, template: str) -> AdapterMeta:
        """The record the bare base is served with (no adapter): its template, prepare's old defaults."""
        return cls(base_model=BaseRecord(fingerprint=""), template=template, prepare={}, train={})


def now() -> str:
    """``created``: UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_meta(adapter_dir: str | os.PathLike) -> AdapterMeta:
    """The adapter's ``twin.json``; TwinError (one line: file, field, fix) if missing or malformed."""
    d = Path(adapter_dir)
    f = d / FILE
    if not d.is_dir():
        raise TwinError(f"{d}: adapter directory not found; {_trained_beside(d)}")
    if not f.is_file():
        raise TwinError(
            f"{f}: missing, so this is not a twin adapter (train one with `twin train`, which writes it)"
        )
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except ValueError as e:
        raise TwinError(f"{f}: not valid JSON ({e}); {_RETRAIN}") from None
    return AdapterMeta.from_dict(data, f)


def _trained_beside(d: Path) -> str:
    """What to do about a missing adapter dir: the runs trained beside it (``make eval RUN=demo``),
    or how to train one."""
    runs = sorted(p.parent.name for p in d.parent.glob(f"*/{FILE}")) if d.parent.is_dir() else []
    if runs:
        shown = ", ".join(runs[:5]) + (f" (and {len(runs) - 5} more)" if len(runs) > 5 else "")
        return f"trained runs there: {shown} (RUN={runs[0]} with make); or train this one ({_TRAIN_ONE})"
    return f"train one with {_TRAIN_ONE}"


_TRAIN_ONE = "`make train RUN=NAME` or `twin train --run NAME`"


def _upgrade(data: dict) -> dict:
    """An older format-1 record in today's shape (the fields added since, filled as they behaved)."""
    out = dict(data)
    budget = out.get("budget")
    if isinstance(budget, dict):  # prompt_tokens is computed: checked against the record after validation
        out["budget"] = {k: v for k, v in budget.items() if k != "prompt_tokens"}
    if not out.get("memory"):  # {} and null both meant "no memory"
        out.pop("memory", None)
    return out


def _check_computed(meta: AdapterMeta, data: dict, where: str | os.PathLike) -> None:
    """A recorded ``budget.prompt_tokens`` must be what the budget computes (else the file was edited)."""
    recorded = data["budget"].get("prompt_tokens") if isinstance(data.get("budget"), dict) else None
    if meta.budget is not None and recorded is not None and recorded != meta.budget.prompt_tokens:
        raise TwinError(f"{where}: field 'budget.prompt_tokens' is not seq_tokens - reply_tokens; {_RETRAIN}")


def _context(prepare: dict, where: str | os.PathLike) -> ContextSettings:
    """Prepare's :class:`ContextSettings` out of its recorded settings (which hold more than that)."""
    keys = ("max_context_tokens", "chars_per_token", "tokenizer")
    unit = prepare.get("context_unit")
    if unit is not None and unit not in ("tokens", "chars"):
        raise TwinError(
            f"{where}: field 'prepare.context_unit' is {unit!r} (expected tokens or chars); {_RETRAIN}"
        )
    settings = {"max_context_tokens": _LEGACY_CONTEXT_TOKENS} | {k: prepare[k] for k in keys if k in prepare}
    try:
        return ContextSettings(**settings)
    except ValidationError as e:
        raise TwinError(f"{where}: {_first_error(e, 'prepare')}; {_RETRAIN}") from None


def _first_error(e: ValidationError, prefix: str = "") -> str:
    """pydantic's first complaint as ``field 'a.b' <what is wrong> (got <value>)``."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    got = f" (got {repr(err['input'])[:60]})" if err["type"] != "missing" else ""
    return f"field '{loc}': {err['msg'].lower()}{got}"
