"""Text hygiene for whatever a customer (or a rep) typed: one pure module, no I/O.

Every intake path (webhook forms, mail) passes its fields through here before
anything is stored, so later steps (cards, reply headers, templates) never meet
a control character they cannot handle.

- One-line fields (name, company, subject, phone, ...): Unicode NFC; control
  characters (CR, LF, NUL, TAB, ...) and line/paragraph separators become a
  space; bidi embedding/override/isolate marks and zero-width characters
  (ZWSP, ZWNJ, ZWJ, word joiner, BOM) are dropped (they can disguise a name or
  an address on a card); runs of spaces collapse; lone surrogates become U+FFFD.
- Multi-line text (the message): NFC; CRLF and CR become LF, U+2028/U+2029
  become LF; other control characters except TAB are dropped, and so are bidi
  controls; zero-width joiners stay (emoji sequences and some scripts need them).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["BIDI_CONTROLS", "ZERO_WIDTH", "clean_line", "clean_text", "line_problem"]

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Bidirectional marks, embeddings, overrides and isolates."""
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e")
"""Zero-width space, non-joiner, joiner, word joiner, BOM, Mongolian vowel separator."""

_SPACES = re.compile(r"\s+")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", _SURROGATES.sub("\ufffd", value))


def clean_line(value: str, *, limit: int = 0) -> str:
    """``value`` as one clean line (see the module docstring); cut to ``limit`` characters if set."""
    out: list[str] = []
    for char in _nfc(value):
        if char in BIDI_CONTROLS or char in ZERO_WIDTH:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif category == "Cf" and char != "\u00ad":
            continue  # other invisible format characters
        else:
            out.append(char)
    line = _SPACES.sub(" ", "".join(out)).strip()
    return line[:limit].rstrip() if limit else line


def clean_text(value: str) -> str:
    """``value`` as clean multi-line text: newlines kept (as LF), controls and bidi marks gone."""
    text = _nfc(value).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for char in text:
        if char in "\n\t":
            out.append(char)
        elif char in ("\u2028", "\u2029"):
            out.append("\n")
        elif (
            char in BIDI_CONTROLS
            or char in ("\ufeff", "\u200b", "\u2060")
            or unicodedata.category(char) == "Cc"
        ):
            continue
        else:
            out.append(char)
    return "".join(out)


def line_problem(value: str) -> str | None:
    """Why ``value`` cannot be one header line as it is, or None: for what a rep types."""
    for char in value:
        if char in "\r\n":
            return "must be one line (no line breaks)"
        if unicodedata.category(char) in ("Cc", "Cs") or char in BIDI_CONTROLS:
            return f"contains the invisible control character U+{ord(char):04X}"
    return None
