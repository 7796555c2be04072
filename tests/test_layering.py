"""The tree matches the README's Architecture map: stages never import each other (shared code lives
below them: twin/*.py, twin/text/, twin/model/, twin/inference/)."""

from __future__ import annotations

import ast
from pathlib import Path

TWIN = Path(__file__).resolve().parents[1] / "twin"
STAGES = ("sources", "prepare", "train", "serve", "eval", "publish", "drafts")


def imported_twin_packages(path: Path) -> set[str]:
    """The ``twin.<package>`` names a module imports (at any depth: top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("twin.") and n.count(".") >= 1}
    return found


def test_no_stage_imports_another_stage() -> None:
    crossings = sorted(
        f"{path.relative_to(TWIN.parent)} imports twin.{other}"
        for stage in STAGES
        for path in (TWIN / stage).rglob("*.py")
        for other in imported_twin_packages(path)
        if other in STAGES and other != stage
    )
    assert crossings == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from twin.serve.engine import Engine\n    import twin.eval.run\n")
    assert imported_twin_packages(module) == {"serve", "eval"}
