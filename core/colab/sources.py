"""The app's own training code, bundled into a notebook: the entry modules and every
``core`` module they import, read from this checkout when the notebook is written."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from core.colab.errors import NotebookError

ENTRY_MODULES = ("core.training.worker", "core.colab.cells")
"""The bundled code is these modules and every ``core`` module they import (at any level)."""


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def bundled_modules(entries: Iterable[str] = ENTRY_MODULES) -> dict[str, Path]:
    """Every ``core`` module the entries import, at module level or inside a function
    (the worker imports most of what it needs lazily), with their packages."""
    root = _repo_root()
    found: dict[str, Path] = {}
    entries = list(entries)
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_file(root, name)
        if path is None:
            continue  # a name imported from a module, not a module
        found[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "core":
                    todo.append(node.module)
                    todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.split(".")[0] == "core")
    missing = [name for name in entries if name not in found]
    if missing:
        raise NotebookError(
            f"The app's source of {', '.join(missing)} is not on disk (a frozen build must "
            "ship core/**/*.py as data files for Export for Colab…)."
        )
    return dict(sorted(found.items()))


def bundled_sources() -> dict[str, str]:
    """Relative path → text of the code and resources the remote run needs."""
    root = _repo_root()
    out = {
        str(path.relative_to(root).as_posix()): path.read_text(encoding="utf-8")
        for path in bundled_modules().values()
    }
    # The prompt templates: a tuned model's model.json records their digest.
    prompts = root / "resources" / "prompts"
    if prompts.is_dir():
        for path in sorted(prompts.glob("*.txt")):
            out[f"resources/prompts/{path.name}"] = path.read_text(encoding="utf-8")
    return out
