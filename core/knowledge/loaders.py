"""Read user files into normalised text with their heading structure.

Every loader returns a :class:`Document` whose ``sections`` cover ``text`` in order
and carry the heading path of each span. Every failure is a ``DocumentError``
subclass whose ``reason`` is one sentence for the per-file report: no library
exception leaves this module. This module checks and reads the file, picks the
reader for its format (``load_text``, ``load_html``, ``load_docx``, ``load_pdf``) and
walks folders; ``text_decoding`` and ``outline`` hold what the readers share.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from core.errors import (
    CorruptDocument,
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    UnreadableFile,
    UnsupportedFormat,
    VanishedFile,
)
from core.knowledge.load_docx import load_docx
from core.knowledge.load_html import load_html
from core.knowledge.load_pdf import load_pdf
from core.knowledge.load_text import load_markdown, load_plain, load_rst
from core.knowledge.types import Document

log = logging.getLogger(__name__)

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
RST_EXTENSIONS = frozenset({".rst"})
PLAIN_EXTENSIONS = frozenset({".txt", ".text"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    MARKDOWN_EXTENSIONS | RST_EXTENSIONS | PLAIN_EXTENSIONS | HTML_EXTENSIONS | {".pdf", ".docx"}
)

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Files above this are refused: extracting them would stall indexing for minutes."""


# --------------------------------------------------------------------------- public API


def load_document(path: Path) -> Document:
    """Read one file into a :class:`Document`.

    Raises a ``DocumentError`` subclass (never a library exception) when the file
    cannot give text: unsupported format, empty, binary, corrupt, encrypted,
    unreadable, vanished or too large.
    """
    path = Path(path)
    name = str(path)
    ext = path.suffix.lower()
    size = _check_file(path, name)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = f"'{ext}'" if ext else "files without an extension"
        raise UnsupportedFormat(
            name,
            f"unsupported format {shown}; supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}",
        )
    if size == 0:
        raise EmptyDocument(name, "the file is empty")
    data = _read_bytes(path, name)
    reader = _READERS[ext]
    try:
        doc = reader(name, data)
    except DocumentError:
        raise
    except MemoryError as exc:
        raise DocumentTooLarge(name, "not enough memory to read this file") from exc
    except Exception as exc:  # a parser bug or odd file must not abort a whole indexing run
        log.debug("loader for %s failed", name, exc_info=True)
        raise CorruptDocument(name, f"could not be read ({type(exc).__name__}: {exc})") from exc
    if not doc.text.strip():
        raise EmptyDocument(name, "no text found in the file")
    if not doc.title:
        doc.title = path.stem
    return doc


def iter_files(
    paths: Iterable[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    skip_hidden: bool = True,
) -> Iterator[Path]:
    """Yield the files to index under ``paths``, each once, in a stable order.

    A file named directly is always yielded (unless excluded), whatever its
    format, so the user hears why it was not indexed; a missing one too, so the
    report says "not found". Inside folders (recursive, sorted, symlink loops
    broken) a file is yielded when it matches ``include`` or, without
    ``include``, when its extension is supported. Patterns are ``fnmatch``
    globs tried on the path relative to the folder and on the bare name;
    an ``exclude`` pattern that matches a folder prunes it. Hidden files and
    folders (``.git``) are skipped unless ``skip_hidden`` is false.
    """
    include = [_clean_pattern(p) for p in include]
    exclude = [_clean_pattern(p) for p in exclude]
    seen_files: set[tuple[int, int] | str] = set()
    for root in paths:
        root = Path(root)
        if root.is_dir():
            yield from _walk(root, include, exclude, skip_hidden, seen_files)
            continue
        if _matches(root.name, root.name, exclude):
            continue
        key = _file_key(root)
        if key in seen_files:
            continue
        seen_files.add(key)
        yield root


# --------------------------------------------------------------------------- file checks


def _check_file(path: Path, name: str) -> int:
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise VanishedFile(name, "the file was not found (moved or deleted?)") from exc
    except PermissionError as exc:
        raise UnreadableFile(name, "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise UnreadableFile(name, f"cannot access the file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise UnsupportedFormat(name, "this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UnsupportedFormat(name, "not a regular file (device, pipe or socket)")
    if st.st_size > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            name,
            f"the file is too large ({st.st_size / 2**20:.0f} MB, limit "
            f"{MAX_FILE_BYTES // 2**20} MB); split it into smaller files",
        )
    return st.st_size


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        with path.open("rb") as fh:
            # Read one byte past the cap: the file may have grown since stat().
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise VanishedFile(name, "the file disappeared while it was being read") from exc
    except PermissionError as exc:
        raise UnreadableFile(name, "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise UnreadableFile(name, f"the file could not be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            name, f"the file is over the {MAX_FILE_BYTES // 2**20} MB limit; split it"
        )
    return data


# --------------------------------------------------------------------------- formats

_READERS: dict[str, Callable[[str, bytes], Document]] = {
    **{ext: load_markdown for ext in MARKDOWN_EXTENSIONS},
    **{ext: load_rst for ext in RST_EXTENSIONS},
    **{ext: load_plain for ext in PLAIN_EXTENSIONS},
    **{ext: load_html for ext in HTML_EXTENSIONS},
    ".docx": load_docx,
    ".pdf": load_pdf,
}


# --------------------------------------------------------------------------- file walking


def _clean_pattern(pattern: str) -> str:
    pattern = pattern.replace("\\", "/").strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/")


def _matches(relative: str, name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        # `**/x` should also match `x` at the top: fnmatch's `*` already crosses folders.
        bare = pattern[3:] if pattern.startswith("**/") else pattern
        for candidate in {pattern, bare}:
            if fnmatch.fnmatch(relative, candidate) or fnmatch.fnmatch(name, candidate):
                return True
    return False


def _file_key(path: Path) -> tuple[int, int] | str:
    try:
        st = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


def _walk(
    root: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_hidden: bool,
    seen_files: set[tuple[int, int] | str],
) -> Iterator[Path]:
    seen_dirs: set[tuple[int, int]] = set()

    def visit(folder: Path, relative: PurePosixPath) -> Iterator[Path]:
        try:
            st = folder.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink back up the tree
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: (e.name.casefold(), e.name))
        except OSError as exc:
            log.warning("skipping folder %s: %s", folder, exc.strerror or exc)
            return
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            rel = relative / entry.name
            if _matches(rel.as_posix(), entry.name, exclude):
                continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError:
                continue
            if is_dir:
                yield from visit(Path(entry.path), rel)
            elif is_file:
                if include:
                    wanted = _matches(rel.as_posix(), entry.name, include)
                else:
                    wanted = Path(entry.name).suffix.lower() in SUPPORTED_EXTENSIONS
                if not wanted:
                    continue
                path = Path(entry.path)
                key = _file_key(path)
                if key in seen_files:
                    continue
                seen_files.add(key)
                yield path

    yield from visit(root, PurePosixPath())
