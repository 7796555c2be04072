"""The bundled run recipes in ``pipelines/``: list them and copy one to start from.

A user edits a copy of a known-good recipe rather than writing one from a blank file; the copy
is validated as it is written, so a broken bundled recipe is caught here, not at training time.
"""

from __future__ import annotations

import os
from pathlib import Path

from twin.errors import TwinError
from twin.fileio import atomic_write_text


def pipelines_dir() -> Path:
    """``./pipelines`` when run from a checkout, else the one next to the installed package."""
    here = Path.cwd() / "pipelines"
    if here.is_dir() and any(here.glob("*.yaml")):
        return here
    return Path(__file__).resolve().parents[2] / "pipelines"


def list_configs(root: str | os.PathLike | None = None) -> list[dict]:
    """``[{"name", "path", "description"}]`` for every ``*.yaml`` recipe, sorted by name.

    The description is the first sentence of the recipe's leading comment block.
    """
    d = Path(root) if root else pipelines_dir()
    out = []
    for f in sorted(d.glob("*.yaml"), key=lambda f: f.stem):  # llama-3.1-8b before llama-3.1-8b-qlora
        lines = []
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
        text = " ".join(x for x in lines if x)
        first = text.split(". ", 1)[0].rstrip(".")  # the first sentence is the summary
        out.append({"name": f.stem, "path": str(f), "description": first + "." if first else ""})
    return out


def find_config(name: str, root: str | os.PathLike | None = None) -> Path:
    stem = name[:-5] if name.endswith(".yaml") else name
    known = list_configs(root)
    for c in known:
        if c["name"] == stem:
            return Path(c["path"])
    names = ", ".join(c["name"] for c in known) or "(none found)"
    raise TwinError(f"config {name!r} not found; bundled recipes: {names} (see `twin configs list`)")


def copy_config(
    name: str, dest: str | os.PathLike, *, force: bool = False, root: str | os.PathLike | None = None
) -> Path:
    """Copy recipe ``name`` to ``dest`` (a file, or a directory to put ``<name>.yaml`` in)."""
    from twin.config import load_config
    from twin.train.config import TrainConfig

    src = find_config(name, root)
    out = Path(dest)
    if out.is_dir():
        out = out / src.name
    if out.exists() and not force:
        raise TwinError(f"{out}: already exists; pick another path or pass --force to overwrite it")
    if out.suffix not in (".yaml", ".yml"):
        raise TwinError(f"{out}: give the copy a .yaml name so `twin train --config` reads it")
    load_config(TrainConfig, src)  # a recipe we hand out must validate
    atomic_write_text(out, src.read_text(encoding="utf-8"))
    return out
