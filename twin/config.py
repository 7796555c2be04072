"""Run configuration: pydantic models, loaded from YAML in ``pipelines/`` plus CLI overrides.

Each stage defines its own model (a subclass of :class:`StageConfig`) next to the code that
reads it, so importing one stage never imports another. This module holds what they share:
strict validation (unknown keys are errors, typos never pass silently), YAML loading and
``--set key=value`` overrides with dotted keys for nested sections.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from twin.errors import TwinError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    # allow_inf_nan=False: a float setting of nan or inf (`--temperature inf`, `--set optim.lr=nan`) is
    # refused at load, in one line, instead of failing later in every step or request.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


def _parse_scalar(raw: str) -> Any:
    """``--set`` values are YAML scalars: 3 -> int, 1e-4 -> float, true -> bool, [a,b] -> list."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; a learning rate is what people mean.
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            return value
    return value


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["lora.r=8", "lr=1e-4"]`` -> ``{"lora": {"r": 8}, "lr": 1e-4}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise TwinError(f"--set {pair!r}: expected key=value, e.g. --set lora.r=8")
        key, raw = pair.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise TwinError(f"--set {pair!r}: empty key")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise TwinError(f"--set {pair!r}: '{p}' is both a value and a section")
        node[parts[-1]] = _parse_scalar(raw)
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TwinError(f"{path}: config file not found; `twin configs list` shows the bundled recipes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise TwinError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise TwinError(f"{path}: a config must be a YAML mapping of keys to values")
    return data


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem, each naming the dotted field: 'train.yaml: lora.r: ...'."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"{source}: unknown key '{loc}' (typo? see `twin configs list` for a known-good recipe)"
            )
        else:
            lines.append(f"{source}: {loc}: {e['msg']}")
    return "; ".join(lines)


def load_config(
    cls: type[C],
    path: str | os.PathLike | None = None,
    overrides: list[str] | dict | None = None,
) -> C:
    """Validate ``path`` (YAML) merged with overrides into ``cls``; errors name file and field."""
    data = read_yaml(path) if path else {}
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    merged = deep_merge(data, extra)
    source = str(path) if path else "config"
    try:
        return cls.model_validate(merged)
    except ValidationError as e:
        raise TwinError(format_validation_error(e, source)) from None


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
