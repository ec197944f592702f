"""Charset labels and byte decoding for email, read the way browsers and mail clients do.

Mail in the wild declares charsets loosely: ``gb2312`` for text that uses GBK-only
characters, ``iso-8859-1`` for Windows-1252 punctuation, ``ks_c_5601-1987`` for CP949,
``x-mac-cyrillic``, ``utf8;`` and plain nonsense (``bad-charset``), or nothing at all.
This module owns the one decision "which text do these bytes mean":

1. a byte-order mark wins (WHATWG "BOM sniffing");
2. a declared label is resolved through the WHATWG Encoding Standard's label table
   (``gb2312`` -> GBK decoder, ``us-ascii``/``iso-8859-1`` -> windows-1252, ...), then
   through Python's own codec aliases (``cp932``, ``utf-7``);
3. bytes declared as a legacy charset that are valid UTF-8 with non-ASCII content are
   read as UTF-8 (a very common mislabel; random legacy text is almost never valid UTF-8);
4. anything undeclared, unknown or undecodable falls back to UTF-8, then to
   windows-1252 when the result reads as Western text, then to ``charset-normalizer``.

Pure functions, no I/O; nothing here raises on any input.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

__all__ = ["Decoded", "decode_text", "label_encoding", "python_codecs_for_label"]

# WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels):
# encoding name -> its labels. The Python codecs used for each encoding follow below.
_WHATWG_LABELS: dict[str, tuple[str, ...]] = {
    "utf-8": (
        "unicode-1-1-utf-8",
        "unicode11utf8",
        "unicode20utf8",
        "utf-8",
        "utf8",
        "x-unicode20utf8",
    ),
    "ibm866": ("866", "cp866", "csibm866", "ibm866"),
    "iso-8859-2": (
        "csisolatin2",
        "iso-8859-2",
        "iso-ir-101",
        "iso8859-2",
        "iso88592",
        "iso_8859-2",
        "iso_8859-2:1987",
        "l2",
        "latin2",
    ),
    "iso-8859-3": (
        "csisolatin3",
        "iso-8859-3",
        "iso-ir-109",
        "iso8859-3",
        "iso88593",
        "iso_8859-3",
        "iso_8859-3:1988",
        "l3",
        "latin3",
    ),
    "iso-8859-4": (
        "csisolatin4",
        "iso-8859-4",
        "iso-ir-110",
        "iso8859-4",
        "iso88594",
        "iso_8859-4",
        "iso_8859-4:1988",
        "l4",
        "latin4",
    ),
    "iso-8859-5": (
        "csisolatincyrillic",
        "cyrillic",
        "iso-8859-5",
        "iso-ir-144",
        "iso8859-5",
        "iso88595",
        "iso_8859-5",
        "iso_8859-5:1988",
    ),
    "iso-8859-6": (
        "arabic",
        "asmo-708",
        "csiso88596e",
        "csiso88596i",
        "csisolatinarabic",
        "ecma-114",
        "iso-8859-6",
        "iso-8859-6-e",
        "iso-8859-6-i",
        "iso-ir-127",
        "iso8859-6",
        "iso88596",
        "iso_8859-6",
        "iso_8859-6:1987",
    ),
    "iso-8859-7": (
        "csisolatingreek",
        "ecma-118",
        "elot_928",
        "greek",
        "greek8",
        "iso-8859-7",
        "iso-ir-126",
        "iso8859-7",
        "iso88597",
        "iso_8859-7",
        "iso_8859-7:1987",
        "sun_eu_greek",
    ),
    "iso-8859-8": (
        "csiso88598e",
        "csisolatinhebrew",
        "hebrew",
        "iso-8859-8",
        "iso-8859-8-e",
        "iso-ir-138",
        "iso8859-8",
        "iso88598",
        "iso_8859-8",
        "iso_8859-8:1988",
        "visual",
        "csiso88598i",
        "iso-8859-8-i",
        "logical",
    ),
    "iso-8859-10": (
        "csisolatin6",
        "iso-8859-10",
        "iso-ir-157",
        "iso8859-10",
        "iso885910",
        "l6",
        "latin6",
    ),
    "iso-8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "iso-8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "iso-8859-15": (
        "csisolatin9",
        "iso-8859-15",
        "iso8859-15",
        "iso885915",
        "iso_8859-15",
        "l9",
    ),
    "iso-8859-16": ("iso-8859-16",),
    "koi8-r": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "koi8-u": ("koi8-ru", "koi8-u"),
    "macintosh": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "windows-874": (
        "dos-874",
        "iso-8859-11",
        "iso8859-11",
        "iso885911",
        "tis-620",
        "windows-874",
    ),
    "windows-1250": ("cp1250", "windows-1250", "x-cp1250"),
    "windows-1251": ("cp1251", "windows-1251", "x-cp1251"),
    "windows-1252": (
        "ansi_x3.4-1968",
        "ascii",
        "cp1252",
        "cp819",
        "csisolatin1",
        "ibm819",
        "iso-8859-1",
        "iso-ir-100",
        "iso8859-1",
        "iso88591",
        "iso_8859-1",
        "iso_8859-1:1987",
        "l1",
        "latin1",
        "us-ascii",
        "windows-1252",
        "x-cp1252",
    ),
    "windows-1253": ("cp1253", "windows-1253", "x-cp1253"),
    "windows-1254": (
        "cp1254",
        "csisolatin5",
        "iso-8859-9",
        "iso-ir-148",
        "iso8859-9",
        "iso88599",
        "iso_8859-9",
        "iso_8859-9:1989",
        "l5",
        "latin5",
        "windows-1254",
        "x-cp1254",
    ),
    "windows-1255": ("cp1255", "windows-1255", "x-cp1255"),
    "windows-1256": ("cp1256", "windows-1256", "x-cp1256"),
    "windows-1257": ("cp1257", "windows-1257", "x-cp1257"),
    "windows-1258": ("cp1258", "windows-1258", "x-cp1258"),
    "x-mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    "gbk": (
        "chinese",
        "csgb2312",
        "csiso58gb231280",
        "gb2312",
        "gb_2312",
        "gb_2312-80",
        "gbk",
        "iso-ir-58",
        "x-gbk",
    ),
    "gb18030": ("gb18030",),
    "big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "euc-jp": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "iso-2022-jp": ("csiso2022jp", "iso-2022-jp"),
    "shift_jis": (
        "csshiftjis",
        "ms932",
        "ms_kanji",
        "shift-jis",
        "shift_jis",
        "sjis",
        "windows-31j",
        "x-sjis",
    ),
    "euc-kr": (
        "cseuckr",
        "csksc56011987",
        "euc-kr",
        "iso-ir-149",
        "korean",
        "ks_c_5601-1987",
        "ks_c_5601-1989",
        "ksc5601",
        "ksc_5601",
        "windows-949",
    ),
    # WHATWG maps these to the "replacement" decoder (a browser security measure against
    # script injection); in mail they are plain legacy charsets that Python can decode.
    "iso-2022-kr": ("csiso2022kr", "iso-2022-kr"),
    "hz-gb-2312": ("hz-gb-2312",),
    "utf-16be": ("unicodefffe", "utf-16be"),
    "utf-16le": (
        "csunicode",
        "iso-10646-ucs-2",
        "ucs-2",
        "unicode",
        "unicodefeff",
        "utf-16",
        "utf-16le",
    ),
    "x-user-defined": ("x-user-defined",),
}

# WHATWG encoding -> Python codecs tried in order (strictly). The first one is the
# browser-equivalent decoder; later ones are supersets some senders really use.
_PYTHON_CODECS: dict[str, tuple[str, ...]] = {
    "utf-8": ("utf-8",),
    "ibm866": ("cp866",),
    "iso-8859-2": ("iso8859_2",),
    "iso-8859-3": ("iso8859_3",),
    "iso-8859-4": ("iso8859_4",),
    "iso-8859-5": ("iso8859_5",),
    "iso-8859-6": ("iso8859_6",),
    "iso-8859-7": ("iso8859_7",),
    "iso-8859-8": ("iso8859_8",),
    "iso-8859-10": ("iso8859_10",),
    "iso-8859-13": ("iso8859_13",),
    "iso-8859-14": ("iso8859_14",),
    "iso-8859-15": ("iso8859_15",),
    "iso-8859-16": ("iso8859_16",),
    "koi8-r": ("koi8_r",),
    "koi8-u": ("koi8_u",),
    "macintosh": ("mac_roman",),
    "windows-874": ("cp874",),
    "windows-1250": ("cp1250",),
    "windows-1251": ("cp1251",),
    # windows-1252 leaves five bytes undefined; browsers map them to C1 controls (latin-1).
    "windows-1252": ("cp1252", "latin-1"),
    "windows-1253": ("cp1253",),
    "windows-1254": ("cp1254",),
    "windows-1255": ("cp1255",),
    "windows-1256": ("cp1256",),
    "windows-1257": ("cp1257",),
    "windows-1258": ("cp1258",),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "gbk": ("gb18030", "gbk"),
    "gb18030": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "iso-2022-jp": ("iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_2"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "euc-kr": ("cp949", "johab"),
    "iso-2022-kr": ("iso2022_kr",),
    "hz-gb-2312": ("hz",),
    "utf-16be": ("utf-16-be",),
    "utf-16le": ("utf-16-le",),
    "x-user-defined": ("latin-1",),
}

_LABEL_TO_ENCODING: dict[str, str] = {
    label: name for name, labels in _WHATWG_LABELS.items() for label in labels
}

# Encodings whose bytes are not ASCII-transparent (an ASCII-only payload may still
# carry escape sequences or be UTF-16), so the pure-ASCII fast path must not apply.
_NOT_ASCII_TRANSPARENT = ("utf_16", "utf_32", "utf_7", "iso2022", "hz")

# Encodings where a valid-UTF-8 payload must not be re-read as UTF-8.
_UNICODE_CODECS = ("utf_8", "utf_16", "utf_32", "utf_7")

# Multi-byte CJK encodings: candidates for undoing "double encoding" (legacy bytes read
# as Latin-1 and saved again as UTF-8).
_CJK_ENCODINGS = frozenset({"gbk", "gb18030", "big5", "euc-jp", "shift_jis", "euc-kr"})

_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD_WITH_HIGH_RE = re.compile(r"\w*[^\x00-\x7f]\w*")


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, with the codec used and a note when the label was wrong."""

    text: str
    """The decoded text."""
    encoding: str
    """Python codec name that produced ``text``."""
    note: str | None = None
    """Human-readable remark when the declared charset was missing, unknown or wrong."""


def _normalise_label(label: str) -> str:
    return label.strip().strip("\"'").strip().rstrip(";").strip().lower()


def _is_text_codec(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # codecs.lookup also finds bytes-to-bytes transforms ("base64", "zlib", "rot13").
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def python_codecs_for_label(label: str | None) -> tuple[str, ...]:
    """Python codec names for a charset label (WHATWG first, then Python's aliases).

    Returns an empty tuple when the label is missing or unknown.
    """
    if not label:
        return ()
    norm = _normalise_label(label)
    if not norm:
        return ()
    encoding = _LABEL_TO_ENCODING.get(norm)
    if encoding is not None:
        return _PYTHON_CODECS[encoding]
    # Not a WHATWG label: Python knows many more aliases (cp932, utf-7, iso-2022-jp-2, ...).
    for candidate in (norm, norm.replace("x-", "", 1) if norm.startswith("x-") else None):
        if candidate:
            name = _is_text_codec(candidate)
            if name is not None:
                return (name,)
    return ()


def label_encoding(label: str | None) -> str | None:
    """The WHATWG encoding name a label stands for (``"latin1"`` -> ``"windows-1252"``)."""
    if not label:
        return None
    return _LABEL_TO_ENCODING.get(_normalise_label(label))


def _sniff_bom(data: bytes) -> tuple[str, int] | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if data.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if data.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _utf8_mostly(data: bytes) -> str | None:
    """UTF-8 text with a few stray bytes (truncation, one bad byte) reads as UTF-8."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if good >= 2 and bad <= max(1, good // 10):
        return text
    return None


def _reads_as_western(text: str) -> bool:
    """True when non-ASCII characters sit inside mostly-ASCII words as letters.

    Accented Latin text (``Aquí``, ``Formação``) looks like this in windows-1252;
    Cyrillic, Greek or CJK bytes read as windows-1252 give words made almost entirely
    of high characters or of symbols (``Ìîÿ``, ``Za¿ó³æ``).
    """
    for word in _WORD_WITH_HIGH_RE.findall(text):
        high = [ch for ch in word if ord(ch) > 0x7F]
        if any(not ch.isalpha() for ch in high) and len(word) > len(high):
            return False
        if len(high) * 2 > len(word) and len(word) > 2:
            return False
    return True


def _detect(data: bytes) -> Decoded | None:
    try:
        best = from_bytes(data[:65536]).best()
    except Exception:  # charset-normalizer is a heuristic; never let it break parsing
        return None
    if best is None or not best.encoding:
        return None
    codec = _is_text_codec(best.encoding)
    if codec is None:
        return None
    try:
        text = data.decode(codec, errors="replace")
    except (LookupError, ValueError):
        return None
    return Decoded(text, codec)


def _undeclared(data: bytes) -> Decoded:
    text = _strict(data, "utf-8")
    if text is not None:
        return Decoded(text, "utf-8")
    text = _utf8_mostly(data)
    if text is not None:
        return Decoded(text, "utf-8", "invalid UTF-8 bytes replaced")
    western = _strict(data, "cp1252")
    if western is not None and _reads_as_western(western):
        return Decoded(western, "cp1252")
    detected = _detect(data)
    if detected is not None:
        return detected
    return Decoded(data.decode("cp1252", errors="replace"), "cp1252")


def _undo_double_encoding(text: str, encoding: str) -> Decoded | None:
    """Legacy CJK bytes once read as Latin-1 and re-saved as UTF-8: reverse it."""
    if encoding not in _CJK_ENCODINGS or any(ord(ch) > 0xFF for ch in text):
        return None
    # Mojibake of CJK text is dense with high Latin-1 symbols; real accented Latin
    # text ("danglüe") is not, and must stay as it is.
    if sum(1 for ch in text if ord(ch) > 0x7F) < 4 or _reads_as_western(text):
        return None
    for single in ("latin-1", "cp1252"):
        try:
            legacy = text.encode(single)
        except UnicodeEncodeError:
            continue
        for codec in _PYTHON_CODECS[encoding]:
            recovered = _strict(legacy, codec)
            if recovered is not None and len(_CJK_RE.findall(recovered)) >= 2:
                return Decoded(
                    recovered,
                    codec,
                    f"double-encoded {encoding} text (UTF-8 of Latin-1 mojibake) reversed",
                )
    return None


def decode_text(data: bytes, label: str | None = None) -> Decoded:
    """Decode ``data`` declared as charset ``label`` (or undeclared) the way a reader sees it.

    Never raises. ``Decoded.note`` says when the label was missing, unknown or wrong.
    """
    if not data:
        return Decoded("", "utf-8")
    bom = _sniff_bom(data)
    if bom is not None:
        codec, skip = bom
        return Decoded(data[skip:].decode(codec, errors="replace"), codec)
    candidates = python_codecs_for_label(label)
    is_ascii = data.isascii()
    if is_ascii and (not candidates or not candidates[0].startswith(_NOT_ASCII_TRANSPARENT)):
        return Decoded(data.decode("ascii"), "ascii")
    if not candidates:
        result = _undeclared(data)
        if label and _normalise_label(label):
            note = f"unknown charset {_normalise_label(label)!r}; read as {result.encoding}"
            return Decoded(result.text, result.encoding, note)
        return result
    primary = candidates[0]
    shown = _normalise_label(label or "")
    if not is_ascii and not primary.replace("-", "_").startswith(_UNICODE_CODECS):
        as_utf8 = _strict(data, "utf-8")
        if as_utf8 is not None:
            encoding = label_encoding(label)
            if encoding is not None:
                undone = _undo_double_encoding(as_utf8, encoding)
                if undone is not None:
                    return undone
            return Decoded(as_utf8, "utf-8", f"declared {shown} but the bytes are UTF-8")
    for codec in candidates:
        text = _strict(data, codec)
        if text is not None:
            return Decoded(text, codec)
    # The label is wrong or the text is damaged. A handful of bad bytes in a long text
    # means damage: keep the declared charset. Otherwise the label lies: detect.
    lenient = data.decode(primary, errors="replace")
    damaged = lenient.count("\ufffd")
    readable = sum(1 for ch in lenient if ord(ch) > 0x7F and ch != "\ufffd")
    non_ascii = sum(1 for byte in data if byte > 0x7F)
    if readable and damaged <= max(2, non_ascii // 50):
        return Decoded(lenient, primary, f"{damaged} undecodable byte(s) in {shown} text")
    result = _undeclared(data)
    return Decoded(result.text, result.encoding, f"text is not {shown}; read as {result.encoding}")
