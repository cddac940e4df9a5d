"""Bytes to text for the loaders: encoding detection, binary sniffing, and one spelling of
whitespace and characters, so offsets and search agree everywhere."""

from __future__ import annotations

import codecs
import re
import unicodedata

from core.errors import BinaryContent, CorruptDocument

BINARY_SNIFF_BYTES = 8192
_BINARY_CONTROL_SHARE = 0.10
# Control characters that real text files do contain (tab, newlines, form feed, escape).
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0b\x0c\x1b")


def looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in _TEXT_CONTROLS)
    return controls / len(sample) > _BINARY_CONTROL_SHARE


def decode(name: str, data: bytes, warnings: list[str], declared: str | None = None) -> str:
    """Decode bytes as text: BOM first, then UTF-8, then the declared charset, then cp1252."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise CorruptDocument(
                    name, f"the file starts as {codec.upper()} but is not valid {codec.upper()}"
                ) from exc
            if looks_binary(text[:BINARY_SNIFF_BYTES].encode("utf-8", "replace")):
                raise BinaryContent(name, "the file holds binary data, not text")
            return text
    if looks_binary(data[:BINARY_SNIFF_BYTES]):
        raise BinaryContent(name, "the file holds binary data, not text (is the extension right?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = [c for c in (declared, "cp1252", "latin-1") if c]
    for codec in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        warnings.append(
            f"not valid UTF-8; read as {codec}: check accented characters, "
            "or save the file as UTF-8"
        )
        return text
    raise CorruptDocument(name, "the text encoding could not be recognised")  # pragma: no cover


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufeff\ufffe]")
_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n)")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def normalise(text: str) -> str:
    """One spelling of whitespace and characters, so offsets and search agree everywhere."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x0b", "\n").replace("\x0c", "\n\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n").replace("\u00a0", " ")
    text = _CONTROL_CHARS.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip("\n")


_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
