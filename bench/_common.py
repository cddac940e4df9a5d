"""Helpers shared by the bench scripts (not part of the product)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def default_corpus() -> Path:
    """The npm CLI's own Markdown docs: a real documentation set we did not write."""
    candidates = []
    npm = shutil.which("npm")
    if npm:
        try:
            root = subprocess.run(
                [npm, "root", "-g"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            candidates.append(Path(root) / "npm" / "docs" / "content")
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append(Path("/usr/lib/node_modules/npm/docs/content"))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SystemExit("No corpus found: pass --corpus DIR (a folder of documents).")


ZSH_HTML = Path("/usr/share/doc/zsh-common/html")
"""The zsh manual as HTML (texinfo, 186 pages of which 144 are redirect stubs):
``apt-get install zsh-doc`` on Debian puts it here."""


def default_html_corpus() -> Path:
    """A real multi-page HTML documentation set: the zsh manual from Debian's zsh-doc."""
    if ZSH_HTML.is_dir():
        return ZSH_HTML
    raise SystemExit(
        f"No HTML corpus at {ZSH_HTML}: `apt-get install zsh-doc`, or pass --html DIR "
        "(a folder of .html pages)."
    )


ZSH_PAGES = (
    "Options.html",
    "Parameters.html",
    "Shell-Builtin-Commands.html",
    "Prompt-Expansion.html",
    "Conditional-Expressions.html",
    "Redirection.html",
    "Files.html",
    "Invocation.html",
    "Jobs-_0026-Signals.html",
    "Arithmetic-Evaluation.html",
    "Command-Execution.html",
    "Functions.html",
)
"""The pages of the zsh manual that bench/data/zsh_docs_qa.jsonl asks about: options,
parameters, builtins and the shell's core chapters (about 640 kB of HTML of the 3.9 MB)."""


def zsh_corpus() -> list[Path]:
    """The selected pages of the zsh HTML manual (Debian's zsh-doc), as files to index."""
    folder = default_html_corpus()
    pages = [folder / name for name in ZSH_PAGES]
    missing = [p.name for p in pages if not p.is_file()]
    if missing:
        raise SystemExit(
            f"The zsh manual at {folder} lacks {', '.join(missing)}: "
            "`apt-get install zsh-doc` installs the whole HTML manual."
        )
    return pages


def zsh_qa() -> Path:
    return HERE / "data" / "zsh_docs_qa.jsonl"


def default_qa() -> Path:
    return HERE / "data" / "npm_docs_qa.jsonl"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if n else cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
