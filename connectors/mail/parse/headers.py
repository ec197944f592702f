"""The header block and header fields: block repair, RFC 2047 decoding, ids, dates, MIME parameters."""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from connectors.mail.charsets import decode_text

# --------------------------------------------------------------------------- helpers


def _to_bytes(value: str) -> bytes:
    """Original bytes of a str produced by ``BytesParser`` (ASCII + surrogate escapes)."""
    return value.encode("utf-8", "surrogateescape")


def _collapse(text: str) -> str:
    return " ".join(text.split())


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_line(text: str) -> str:
    return _collapse(_CONTROL_RE.sub("", text))


# ------------------------------------------------------------------ header block repair

_FIELD_RE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")
_FIELD_SPACED_RE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_HEADER_END_RE = re.compile(rb"\n\r?\n")


def _repair_header_block(raw: bytes, defects: list[str]) -> bytes:
    """Make the header block readable by ``email`` the way a person reads it."""
    if raw.startswith(b"From "):
        # mbox envelope line ("From sender date"), not a header field.
        end = raw.find(b"\n")
        raw = b"" if end < 0 else raw[end + 1 :]
        defects.append("mbox 'From ' envelope line skipped")
    # Only the header block is split into lines (a message may be megabytes long).
    block_end = _HEADER_END_RE.search(raw)
    split = block_end.start() + 1 if block_end else len(raw)
    head, rest = raw[:split], raw[split:]
    lines = head.splitlines(keepends=True)
    if not lines or not (_FIELD_RE.match(lines[0]) or _FIELD_SPACED_RE.match(lines[0])):
        return raw
    blank = len(lines)
    last_field = max(
        (i for i in range(blank) if _FIELD_RE.match(lines[i]) or _FIELD_SPACED_RE.match(lines[i])),
        default=-1,
    )
    out: list[bytes] = []
    changed = False
    keeping = True
    for index in range(blank):
        line = lines[index]
        if line[:1] in (b" ", b"\t"):
            if keeping:
                out.append(line)
            else:
                changed = True
            continue
        if _FIELD_RE.match(line):
            keeping = True
            out.append(line)
            continue
        spaced = _FIELD_SPACED_RE.match(line)
        if spaced:
            keeping = True
            out.append(spaced.group(1) + b":" + line[spaced.end() :])
            changed = True
            continue
        shown = line.strip()[:60].decode("ascii", "replace")
        colon = line.find(b":")
        if 0 < colon <= 200:
            defects.append(f"header field with an illegal name dropped: {shown!r}")
            keeping = False
            changed = True
            continue
        if index < last_field:
            defects.append(f"header line without a colon skipped: {shown!r}")
            keeping = False
            changed = True
            continue
        # No header follows: the header block ended without its blank line.
        defects.append("header block ended without a blank line")
        out.append(b"\r\n" if line.endswith(b"\r\n") else b"\n")
        out.extend(lines[index:])
        out.append(rest)
        return b"".join(out)
    if not changed:
        return raw
    out.append(rest)
    return b"".join(out)


# --------------------------------------------------------------- header field decoding

_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_HEX_RE = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]")


def _b64_lenient(data: bytes) -> bytes:
    """Decode base64 the forgiving way: junk dropped, padding repaired, chunks joined."""
    out = bytearray()
    for chunk in re.split(rb"=+", data):
        cleaned = _B64_JUNK_RE.sub(b"", chunk)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        if not cleaned:
            continue
        try:
            out += binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            continue
    return bytes(out)


def _q_word(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape").replace(b"_", b" ")
    return _QP_HEX_RE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_words(text: str, defects: list[str] | None = None) -> str:
    """Decode RFC 2047 encoded-words in ``text`` (already free of raw 8-bit bytes).

    Adjacent encoded-words are joined without the whitespace between them; consecutive
    words in the same charset are decoded together so a character split across two
    words survives.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: list[tuple[str, list[bytes]]] = []
    position = 0

    def flush() -> None:
        for charset, chunks in pending:
            decoded = decode_text(b"".join(chunks), charset or None)
            if decoded.note and defects is not None:
                defects.append(f"encoded-word: {decoded.note}")
            out.append(decoded.text)
        pending.clear()

    for match in _ENCODED_WORD_RE.finditer(text):
        gap = text[position : match.start()]
        if not pending or gap.strip():
            flush()
            out.append(gap)
        charset = match.group(1).split("*", 1)[0].lower()
        payload = match.group(3)
        if match.group(2) in "bB":
            data = _b64_lenient(payload.encode("ascii", "ignore"))
        else:
            data = _q_word(payload)
        if pending and pending[-1][0] == charset:
            pending[-1][1].append(data)
        else:
            pending.append((charset, [data]))
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)


class _Headers:
    """Raw header fields of one message (compat32 keeps them undecoded)."""

    def __init__(self, message: Message, hint: str | None, defects: list[str]) -> None:
        self._fields: dict[str, list[str]] = {}
        self._hint = hint
        self._defects = defects
        try:
            items = list(message.raw_items())
        except Exception:  # a broken header list must not stop the parse
            items = []
        for name, value in items:
            self._fields.setdefault(str(name).strip().lower(), []).append(str(value))

    def raw(self, name: str) -> str | None:
        values = self._fields.get(name.lower())
        return values[0] if values else None

    def has(self, name: str) -> bool:
        return name.lower() in self._fields

    def unicode(self, name: str) -> str | None:
        """The field with raw 8-bit bytes decoded, encoded-words still in place."""
        value = self.raw(name)
        if value is None:
            return None
        data = _to_bytes(value)
        if data.isascii():
            return value
        decoded = decode_text(data, self._hint)
        if decoded.encoding != "utf-8" or decoded.note:
            self._defects.append(f"raw 8-bit bytes in {name} read as {decoded.encoding}")
        return decoded.text

    def text(self, name: str) -> str:
        """The field fully decoded, whitespace collapsed ('' when absent)."""
        value = self.unicode(name)
        if value is None:
            return ""
        return _clean_line(decode_words(value, self._defects))


def _strip_comments(text: str) -> tuple[str, str]:
    """Text outside (comments) and the text of the comments."""
    outside: list[str] = []
    inside: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            (inside if depth else outside).append(char)
            escaped = False
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            continue
        if depth:
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    continue
            if depth:
                inside.append(char)
            continue
        if char == '"':
            quoted = not quoted
            outside.append(char)
        elif char == "(" and not quoted:
            depth = 1
        else:
            outside.append(char)
    return "".join(outside), " ".join("".join(inside).split())


# ------------------------------------------------------------------ ids, dates, params

_MSGID_RE = re.compile(r"<([^<>]*)>")


def _canonical_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = ["<" + "".join(inner.split()) + ">" for inner in _MSGID_RE.findall(value)]
    found = [item for item in found if item != "<>"]
    if not found:
        outside, _ = _strip_comments(value)
        found = [f"<{token.strip('<>')}>" for token in outside.split() if "@" in token]
    unique: list[str] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    ids = _canonical_ids(value)
    if ids:
        return ids[0]
    token = "".join(_strip_comments(value)[0].split()).strip("<>")
    return f"<{token}>" if token else None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_collapse(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    """A MIME parameter fully decoded (RFC 2231 and RFC 2047), or None."""
    try:
        value = part.get_param(name, header=header)
    except Exception:  # malformed parameter lists must not stop the parse
        return None
    if value is None:
        return None
    if isinstance(value, tuple):
        charset, _language, text = value
        text = text.strip('"') if isinstance(text, str) else ""
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = _to_bytes(text)
        decoded = decode_text(data, charset or None).text
    else:
        data = _to_bytes(str(value))
        decoded = decode_text(data).text if not data.isascii() else str(value)
    return _clean_line(decode_words(decoded))


def _charset(part: Message) -> str | None:
    value = _param(part, "charset")
    return value or None


def _disposition(part: Message) -> str:
    value = part.get("content-disposition")
    if value is None:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


def _filename(part: Message) -> str:
    name = _param(part, "filename", "content-disposition") or _param(part, "name") or ""
    # Keep the base name only: a path in a file name is never wanted when saving.
    name = re.split(r"[\\/]", name)[-1].strip()
    return name


def _content_id(part: Message) -> str | None:
    value = part.get("content-id")
    if value is None:
        return None
    cid = "".join(str(value).split()).strip("<>")
    return cid or None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # compat32 falls back itself; this is belt and braces
        return "text/plain"
