"""File names as the catalog holds them: text, losslessly, even when a name is not valid UTF-8.

A Linux file name is bytes; Python reads one that is not UTF-8 with each undecodable byte as a lone
surrogate (U+DC80-U+DCFF), which SQLite's UTF-8 text cannot hold. The catalog writes each such byte as
the plane-16 private-use character U+10FF80-U+10FFFF instead (shown escaped, and kept in tree names),
and everything that opens a catalogued file maps it back. A real name holding those characters, which
no keyboard or sample vendor produces, would be read back as the bytes they stand for.
"""

from __future__ import annotations

_SURROGATES = range(0xDC80, 0xDD00)
_OFFSET = 0x10FF80 - 0xDC80


def catalog_text(path: str) -> str:
    """`path` as os.scandir gives it -> the catalog's text form (identical for valid UTF-8 names)."""
    if path.isascii():
        return path
    return "".join(chr(ord(c) + _OFFSET) if ord(c) in _SURROGATES else c for c in path)


def os_path(text: str) -> str:
    """The catalog's text form -> the path to open (identical for valid UTF-8 names)."""
    if text.isascii():
        return text
    return "".join(chr(ord(c) - _OFFSET) if 0x10FF80 <= ord(c) <= 0x10FFFF else c for c in text)
