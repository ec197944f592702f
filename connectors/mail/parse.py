"""Reading one raw email (RFC 5322 + MIME) into a typed, display-ready ``ParsedEmail``.

``parse_email`` is pure (no I/O) and never raises: a malformed message still yields a
``ParsedEmail`` with as much as could be read, and ``defects`` says what was broken.

Python's ``email`` package (``policy.compat32``: it keeps raw header values and never
raises on access) builds the MIME tree. Where it reads real mail differently from a
person, this module reads it as a person does:

- header fields are decoded here, not by ``email``: RFC 2047 encoded-words are joined
  per charset before decoding (words split inside a multi-byte character, adjacent words
  in different charsets, encoded-words inside quoted display names), raw 8-bit bytes
  are read as UTF-8, then the message's declared charset, then by detection;
- address lists are split here: ``alice@example.com <bob@example.com>`` is the mailbox
  ``bob@example.com`` (``email.utils`` answers ``alice@example.com``);
- header lines without a colon or with an illegal field name are dropped instead of
  ending the header block, and an mbox ``From `` envelope line is skipped;
- charsets follow the WHATWG rules (``connectors.mail.charsets``);
- a multipart whose declared boundary never occurs is re-read with the boundary its
  body actually uses; a ``message/rfc822`` part sent base64-encoded is decoded first;
- a text part labelled base64 that is not base64 is read as literal text.

What counts as an attachment follows the corpus MANIFEST: a part with
``Content-Disposition: attachment``, a named leaf part that is not body text and not an
inline image referenced by ``cid:`` from the HTML, or a forwarded ``message/rfc822``.
Delivery/disposition report parts (``message/delivery-status``, the returned original,
``text/rfc822-headers``) are never attachments; they feed ``kind``,
``bounce_original_message_id`` and ``bounce_recipient`` instead.
"""

from __future__ import annotations

import binascii
import logging
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import Compat32
from email.utils import parsedate_to_datetime
from io import BytesIO
from typing import Literal

import nh3
from inscriptis import get_text

from connectors.mail.charsets import decode_text, label_encoding

__all__ = ["Attachment", "MailKind", "ParsedEmail", "parse_email"]

logger = logging.getLogger(__name__)

MailKind = Literal["message", "auto_reply", "bounce", "receipt"]
"""What a message is: a person's message, an automatic reply, a bounce, a read receipt."""

SNIPPET_LENGTH = 300
_MAX_DEPTH = 40


@dataclass(frozen=True)
class Attachment:
    """A file carried by a message (or an inline image of its HTML body)."""

    filename: str
    """Decoded file name without any directory part ('' when the sender gave none)."""
    content_type: str
    """Lower-case MIME type, e.g. ``application/pdf``."""
    size: int
    """Size of the decoded payload in bytes."""
    content_id: str | None
    """Content-ID without angle brackets, as used in ``cid:`` URLs."""
    inline: bool
    """True for an inline resource of the HTML body (a ``cid:``-referenced image): shown in
    the message, not a file the user would save. Such parts do not make
    ``ParsedEmail.has_attachment`` true."""
    payload: bytes = field(repr=False)
    """The decoded content (for a forwarded message: the message's bytes)."""


@dataclass(frozen=True)
class ParsedEmail:
    """Everything claimdesk reads from one raw email."""

    message_id: str | None
    """Message-ID in canonical form ``<id@host>`` (whitespace removed), or None."""
    in_reply_to: str | None
    """First message id of In-Reply-To, canonical ``<...>`` form."""
    references: tuple[str, ...]
    """Message ids of References in order, canonical ``<...>`` form, without duplicates."""
    from_name: str
    """Decoded display name of the first From mailbox ('' if none)."""
    from_address: str
    """Lower-cased addr-spec of the first From mailbox ('' if none)."""
    from_addresses: tuple[str, ...]
    """Lower-cased addr-specs of all From mailboxes."""
    reply_to: tuple[str, ...]
    """Lower-cased addr-specs of Reply-To."""
    to: tuple[str, ...]
    """Lower-cased addr-specs of To."""
    cc: tuple[str, ...]
    """Lower-cased addr-specs of Cc."""
    subject: str
    """Decoded subject, whitespace runs collapsed to one space."""
    date: datetime | None
    """Date header as an aware datetime (UTC when the zone is unknown), or None."""
    text: str
    """Readable body: the text/plain parts, else the HTML converted to text."""
    html: str | None
    """The HTML body sanitized with nh3 (``cid:`` image links kept), or None."""
    snippet: str
    """About the first 300 characters of ``text`` without quoted history, on one line."""
    attachments: tuple[Attachment, ...]
    """Attached files and inline images, in message order."""
    kind: MailKind
    """``message``, ``auto_reply``, ``bounce`` or ``receipt``."""
    bounce_original_message_id: str | None
    """For a bounce or receipt: Message-ID of the original message it reports on."""
    bounce_recipient: str | None
    """For a bounce: the failed recipient (Final-Recipient / X-Failed-Recipients)."""
    defects: tuple[str, ...]
    """Human-readable notes on what was broken in the message and how it was read."""
    reply_to_name: str = ""
    """Decoded display name of the first Reply-To mailbox ('' if none)."""
    sender_name: str = ""
    """Decoded display name of the Sender mailbox ('' if none)."""
    sender_address: str = ""
    """Lower-cased addr-spec of the Sender header ('' if none)."""
    signal_headers: dict[str, str] = field(default_factory=dict)
    """The headers a spam score reads (``SIGNAL_HEADERS``), lower-case names, decoded."""

    @property
    def has_attachment(self) -> bool:
        """True when the message carries a file a user would save."""
        return any(not attachment.inline for attachment in self.attachments)


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


# ------------------------------------------------------------------- address parsing


@dataclass(frozen=True)
class _Mailbox:
    name: str
    address: str


def _split_address_list(value: str) -> Iterator[str]:
    """Split an address-list on top-level commas, dropping group syntax."""
    token: list[str] = []
    quoted = False
    escaped = False
    comment = 0
    angle = False
    for char in value:
        if escaped:
            token.append(char)
            escaped = False
            continue
        if quoted:
            token.append(char)
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if comment:
            token.append(char)
            if char == "\\":
                escaped = True
            elif char == "(":
                comment += 1
            elif char == ")":
                comment -= 1
            continue
        if angle:
            token.append(char)
            if char == ">":
                angle = False
            continue
        if char == '"':
            quoted = True
        elif char == "(":
            comment = 1
        elif char == "<":
            angle = True
        elif char in ",;":
            yield "".join(token)
            token = []
            continue
        elif char == ":" and "@" not in "".join(token) and "<" not in "".join(token):
            # "group-name:" starts a group; the name is not a mailbox.
            token = []
            continue
        token.append(char)
    yield "".join(token)


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


def _unquote_name(name: str) -> str:
    name = name.strip()
    parts: list[str] = []
    quoted = False
    escaped = False
    for char in name:
        if escaped:
            parts.append(char)
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        else:
            parts.append(char)
    return "".join(parts)


def _clean_address(address: str) -> str:
    address = "".join(address.split())
    if address.lower().startswith("mailto:"):
        address = address[7:]
    if address.startswith("@") and ":" in address:
        address = address.split(":", 1)[1]  # obsolete source route "@a,@b:user@host"
    address = address.strip("<>;,")
    return address.lower()


def _parse_mailbox(token: str, defects: list[str]) -> _Mailbox | None:
    token = token.strip()
    if not token:
        return None
    outside, comment = _strip_comments(token)
    start = outside.rfind("<")
    if start >= 0:
        end = outside.find(">", start)
        address = outside[start + 1 : end if end >= 0 else len(outside)]
        name = outside[:start] + (outside[end + 1 :] if end >= 0 else "")
        name = _unquote_name(name) or comment
    else:
        address = outside
        name = comment
        if " " in address.strip() and "@" not in address:
            # A bare phrase ("Undisclosed recipients") names no mailbox.
            return None
    address = _clean_address(address)
    name = _clean_line(decode_words(name, defects))
    if not address:
        return None
    return _Mailbox(name=name, address=address)


def _parse_addresses(value: str | None, defects: list[str]) -> list[_Mailbox]:
    if not value:
        return []
    value = value.replace("\r", " ").replace("\n", " ")
    mailboxes: list[_Mailbox] = []
    for token in _split_address_list(value):
        mailbox = _parse_mailbox(token, defects)
        if mailbox is not None:
            mailboxes.append(mailbox)
    return mailboxes


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


# --------------------------------------------------------- transfer-encoding decoding


def _uudecode(data: bytes) -> tuple[bytes, str]:
    """Decode uuencoded data; returns (payload, file name from the 'begin' line)."""
    out = bytearray()
    name = ""
    started = False
    for line in data.splitlines():
        if not started:
            if line.startswith(b"begin"):
                parts = line.split(None, 2)
                if len(parts) == 3:
                    name = parts[2].decode("utf-8", "replace").strip()
                started = True
            continue
        if line.strip() in (b"end", b"`"):
            if line.strip() == b"end":
                break
            continue
        if not line:
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Same repair as the stdlib uu module: trust the length byte.
            length = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:length])
            except binascii.Error:
                continue
    return bytes(out), name


_B64_ALPHABET_RE = re.compile(rb"[A-Za-z0-9+/=]")


def _decode_transfer(
    data: bytes, cte: str, *, is_text: bool, where: str, defects: list[str]
) -> bytes:
    cte = cte.strip().lower()
    if cte in ("", "7bit", "8bit", "binary"):
        return data
    if cte == "base64":
        compact = b"".join(data.split())
        unpadded = compact.rstrip(b"=")
        if len(unpadded) % 4 != 1 and not _B64_JUNK_RE.search(unpadded):
            # Clean base64, at most missing its padding (common and harmless).
            try:
                return binascii.a2b_base64(unpadded + b"=" * (-len(unpadded) % 4))
            except (binascii.Error, ValueError):
                pass
        junk = len(compact) - len(_B64_ALPHABET_RE.findall(compact))
        if is_text and compact and (junk * 20 > len(compact) or len(unpadded) % 4 == 1):
            defects.append(f"{where}: declared base64 but is not; read as literal text")
            return data
        defects.append(f"{where}: damaged base64 decoded leniently")
        return _b64_lenient(compact)
    if cte in ("quoted-printable", "quotedprintable"):
        return binascii.a2b_qp(data)
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        payload, _name = _uudecode(data)
        return payload
    defects.append(f"{where}: unknown Content-Transfer-Encoding {cte!r}; read as is")
    return data


# ------------------------------------------------------------------------ body text

_TAG_RE = re.compile(r"<[^>]*>")
_CID_RE = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
# cid: stays so the web inbox can show inline images; the document head (title, style,
# scripts) is dropped with its content rather than leaking into the text.
_CLEANER = nh3.Cleaner(
    url_schemes=set(nh3.ALLOWED_URL_SCHEMES) | {"cid"},
    clean_content_tags={"script", "style", "title", "head"},
)


def _normalise_newlines(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.lstrip("\ufeff")


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0

    def flush() -> None:
        nonlocal buffer
        if buffer is not None:
            prefix = ">" * buffer_depth + (" " if buffer_depth else "")
            out.append(prefix + buffer)
            buffer = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if buffer is not None and depth != buffer_depth:
            flush()
        if content == "-- ":
            flush()
            out.append(">" * depth + content)
            continue
        buffer = content if buffer is None else buffer + content
        buffer_depth = depth
        if content.endswith(" "):
            if delsp:
                buffer = buffer[:-1]
            continue
        flush()
    flush()
    return "\n".join(out)


def _html_to_text(html: str) -> str:
    if not html.strip():
        return ""
    try:
        text = str(get_text(html))
    except Exception:  # inscriptis/lxml on hostile markup: fall back to tag stripping
        text = _TAG_RE.sub(" ", html)
    return text


def _strip_enriched(text: str) -> str:
    return _TAG_RE.sub("", text).replace("<<", "<")


# --------------------------------------------------------------------- classification

_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_ALT_TEXT_TYPES = frozenset({"text/enriched", "text/richtext"})

_AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:"
    r"auto(?:matic)?[\s_-]*(?:reply|response|answer)|autoreply|autoresponse|"
    r"out[\s-]+of[\s-]+(?:the[\s-]+)?office|ooo\b|"
    r"abwesenheit|automatische\s+antwort|r[ée]ponse\s+automatique|absence|"
    r"respuesta\s+autom[aá]tica|risposta\s+automatica|resposta\s+autom[aá]tica|"
    r"automatisch\s+antwoord|autosvar|automatyczna\s+odpowied[źz]|"
    r"автоответ|автоматический\s+ответ|автоматична\s+відповідь|"
    r"自动回复|自動回覆|自動回复|自动答复|自動応答|自動返信|不在通知|자동\s*응답|"
    r"otomatik\s+yan[ıi]t|automaattinen\s+vastaus|αυτόματη\s+απάντηση|"
    r"odpov[ěe]ď\s+v\s+nep[řr][íi]tomnosti|automatick[áa]\s+odpov[ěe]ď)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|delivery\s+(?:status\s+notification|failure|failed|has\s+failed|"
    r"problem|notification)|returned\s+mail|failure\s+notice|mail\s+delivery\s+failed|"
    r"non[\s-]?delivery|could\s+not\s+be\s+delivered|mail\s+system\s+error|"
    r"unzustellbar|nicht\s+zustellbar|non\s+remis|non\s+recapitabile|no\s+entregado|"
    r"não\s+entregue|退信|未能送达|无法送达|投递失败|配信不能|配送不能|전송\s*실패",
    re.IGNORECASE,
)
_DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})


def _classify(
    headers: _Headers,
    subject: str,
    from_address: str,
    from_name: str,
    report_type: str,
    has_dsn: bool,
    has_mdn: bool,
) -> MailKind:
    if report_type == "disposition-notification" or has_mdn:
        return "receipt"
    if report_type in ("delivery-status", "global-delivery-status") or has_dsn:
        return "bounce"
    localpart = from_address.split("@", 1)[0]
    daemon = (
        localpart in _DAEMON_LOCALPARTS
        or "mail delivery" in from_name.lower()
        or (headers.raw("return-path") or "").strip() == "<>"
    )
    if headers.has("x-failed-recipients") or (daemon and _BOUNCE_SUBJECT_RE.search(subject)):
        return "bounce"
    auto_submitted = (headers.raw("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_reply"
    if headers.has("x-autoreply") or headers.has("x-autorespond"):
        return "auto_reply"
    for name in ("precedence", "x-precedence"):
        if (headers.raw(name) or "").strip().lower() == "auto_reply":
            return "auto_reply"
    if (headers.raw("x-autogenerated") or "").strip().lower() == "reply":
        return "auto_reply"
    if _AUTO_REPLY_SUBJECT_RE.search(subject):
        return "auto_reply"
    return "message"


# ------------------------------------------------------------------------- snippets

_SEPARATOR_LINE_RES = (
    re.compile(
        r"^\s*-{2,}\s*(?:original\s+message|original\s+mail|原始邮件|原始郵件|原邮件|"
        r"ursprüngliche\s+nachricht|message\s+d'origine|mensaje\s+original|"
        r"messaggio\s+originale|mensagem\s+original|oorspronkelijk\s+bericht|"
        r"исходное\s+сообщение|元のメッセージ|원본\s*메시지)\s*-{2,}\s*$",
        re.IGNORECASE,
    ),
    re.compile(r"^.{0,400}(?:пишет|написал[а]?)\s*:\s*$"),
    re.compile(r"^.{0,400}(?:写道|寫道)\s*[:：]?\s*$"),
    re.compile(r"^.{0,400}님이\s*작성\s*[:：]\s*$"),
)
# "On <date>, <name> wrote:" in several languages; mail clients often wrap it in two lines.
_ATTRIBUTION_RES = (
    re.compile(r"^[\s>-]*On\b.{0,400}\bwrote\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.{0,400}\bschrieb\b.{0,200}:\s*$"),
    re.compile(r"^\s*Le\b.{0,400}\ba\s+écrit\s*:\s*$"),
    re.compile(r"^\s*El\b.{0,400}\bescribió\s*:\s*$"),
    re.compile(r"^\s*Il\b.{0,400}\bha\s+scritto\s*:\s*$"),
    re.compile(r"^\s*(?:Em|Às)\b.{0,400}\bescreveu\s*:\s*$"),
    re.compile(r"^\s*Op\b.{0,400}\bschreef\b.{0,200}:\s*$"),
    re.compile(r"^\s*(?:W\s+dniu|Dnia)\b.{0,400}\bnapisał[a]?\s*:\s*$"),
)
_UNDERSCORE_LINE_RE = re.compile(r"^\s*_{8,}\s*$")
_QUOTE_HEADER_FIRST_RE = re.compile(
    r"^\s*\*?(?:from|发件人|寄件者|寄件人|von|de|da|van|от|od|差出人|送信者|보낸\s*사람)\*?\s*[:：]",
    re.IGNORECASE,
)
_QUOTE_HEADER_NEXT_RE = re.compile(
    r"^\s*\*?(?:sent|date|to|subject|cc|发送时间|发送日期|时间|日期|收件人|主题|抄送|"
    r"寄件日期|傳送時間|收件者|主旨|副本|gesendet|datum|an|betreff|envoyé|à|objet|"
    r"enviado|para|asunto|inviato|oggetto|verzonden|aan|onderwerp|отправлено|кому|тема|"
    r"wysłano|do|temat|送信日時|宛先|件名|날짜|받는\s*사람|제목)\*?\s*[:：]",
    re.IGNORECASE,
)


def _history_starts(lines: list[str], index: int) -> bool:
    """Does quoted history (a previous message) start at ``lines[index]``?"""
    line = lines[index]
    if any(pattern.match(line) for pattern in _SEPARATOR_LINE_RES):
        return True
    following = lines[index + 1] if index + 1 < len(lines) else ""
    for pattern in _ATTRIBUTION_RES:
        if pattern.match(line) or (line.strip() and pattern.match(f"{line} {following}")):
            return True
    if _UNDERSCORE_LINE_RE.match(line):
        rest = [item for item in lines[index + 1 : index + 3] if item.strip()]
        return bool(rest) and bool(_QUOTE_HEADER_FIRST_RE.match(rest[0]))
    if _QUOTE_HEADER_FIRST_RE.match(line):
        return any(_QUOTE_HEADER_NEXT_RE.match(item) for item in lines[index + 1 : index + 6])
    return False


def make_snippet(text: str, limit: int = SNIPPET_LENGTH) -> str:
    """The start of ``text`` without quoted history or signature, on one line."""
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            continue
        if line.rstrip("\r") in ("-- ", "--") or _history_starts(lines, index):
            break
        kept.append(line)
    snippet = _collapse(" ".join(kept)) or _collapse(text)
    if len(snippet) <= limit:
        return snippet
    cut = snippet[:limit]
    space = cut.rfind(" ")
    if space > limit - 40:
        cut = cut[:space]
    return cut.rstrip() + "…"


# -------------------------------------------------------------------------- the walk


@dataclass
class _Body:
    """Readable text collected from body parts (one alternative chosen per group)."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


@dataclass
class _Report:
    """What delivery/disposition report parts said."""

    has_dsn: bool = False
    has_mdn: bool = False
    status_texts: list[str] = field(default_factory=list)
    original_message_id: str | None = None


def _raw_payload(part: Message) -> object:
    """The payload as stored: a list of parts, or a str holding the original bytes.

    ``Message.get_payload()`` re-decodes an 8-bit payload with the declared charset
    (errors="replace"), which destroys exactly the bytes a mislabelled part needs.
    """
    return getattr(part, "_payload", None)


def _serialise(message: Message) -> bytes:
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(message)
        return buffer.getvalue()
    except Exception:  # a message email cannot re-serialise: keep what it can print
        try:
            return _to_bytes(message.as_string())
        except Exception:
            return b""


class _RawHeaderPolicy(Compat32):
    """compat32, except that header values are handed out exactly as stored.

    compat32 turns a value holding raw 8-bit bytes into an ``email.header.Header``
    whose ``str()`` has lost those bytes (U+FFFD); this module decodes them itself.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaderPolicy()


def _parse_bytes(data: bytes) -> Message:
    return BytesParser(policy=_POLICY).parsebytes(data)


_DELIMITER_RE = re.compile(r"^--(\S{1,200}?)(--)?[ \t]*$", re.MULTILINE)
_HEADERISH_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]+:")


def _sniff_boundary(body: str, declared: str | None) -> str | None:
    lines = body.splitlines()
    counts: dict[str, int] = {}
    for index, line in enumerate(lines[:-1]):
        match = _DELIMITER_RE.match(line)
        if match and not match.group(2) and _HEADERISH_RE.match(lines[index + 1]):
            candidate = match.group(1)
            if candidate != declared:
                counts[candidate] = counts.get(candidate, 0) + 1
    if not counts:
        return None
    return max(counts.items(), key=lambda item: item[1])[0]


class _Walker:
    """Walks the MIME tree once, collecting body text, attachments and report data."""

    def __init__(self, defects: list[str]) -> None:
        self.defects = defects
        self.attachments: list[Attachment] = []
        self.report = _Report()
        self.cids: set[str] = set()
        self._decoded: dict[int, str] = {}
        self._keep: list[Message] = []  # keep re-parsed parts alive: _decoded keys are ids

    # -- decoding ------------------------------------------------------------------

    def payload_bytes(self, part: Message, where: str, *, is_text: bool) -> bytes:
        raw = _raw_payload(part)
        if isinstance(raw, list):
            # A message/* part that email parsed although it was (wrongly) encoded.
            data = b"".join(_serialise(item) for item in raw if isinstance(item, Message))
        elif isinstance(raw, str):
            data = _to_bytes(raw)
        else:
            return b""
        cte = str(part.get("content-transfer-encoding") or "")
        return _decode_transfer(data, cte, is_text=is_text, where=where, defects=self.defects)

    def part_text(self, part: Message, where: str) -> str:
        key = id(part)
        cached = self._decoded.get(key)
        if cached is not None:
            return cached
        data = self.payload_bytes(part, where, is_text=True)
        charset = _charset(part)
        decoded = decode_text(data, charset)
        if decoded.note:
            self.defects.append(f"{where}: {decoded.note}")
        text = _normalise_newlines(decoded.text)
        if _content_type(part) == "text/plain":
            fmt = (_param(part, "format") or "").lower()
            if fmt == "flowed":
                text = _unflow(text, (_param(part, "delsp") or "").lower() == "yes")
        self._decoded[key] = text
        return text

    # -- pre-pass: which Content-IDs does the HTML reference? --------------------------

    def collect_cids(self, part: Message, where: str, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            return
        ctype = _content_type(part)
        if ctype in _MESSAGE_TYPES or ctype in _REPORT_TYPES:
            return
        if part.is_multipart():
            payload = _raw_payload(part)
            if isinstance(payload, list):
                for number, child in enumerate(payload, 1):
                    if isinstance(child, Message):
                        self.collect_cids(child, f"{where}.{number}", depth + 1)
            return
        if ctype == "text/html" and _disposition(part) != "attachment":
            html = self.part_text(part, where)
            for match in _CID_RE.findall(html):
                self.cids.add(urllib.parse.unquote(match).strip("<>").lower())

    # -- main walk ---------------------------------------------------------------------

    def walk(
        self, part: Message, body: _Body, where: str, depth: int = 0, parent: str = ""
    ) -> None:
        if depth > _MAX_DEPTH:
            self.defects.append(f"{where}: MIME nesting deeper than {_MAX_DEPTH}; rest skipped")
            return
        ctype = _content_type(part)
        maintype = ctype.split("/", 1)[0]
        if ctype in _REPORT_TYPES:
            self.read_report_part(part, ctype, where)
            return
        if ctype in _MESSAGE_TYPES:
            self.add_forwarded(part, where)
            return
        if maintype == "multipart":
            self.walk_multipart(part, ctype, body, where, depth)
            return
        self.walk_leaf(part, ctype, body, where, in_related=parent == "multipart/related")

    def walk_multipart(
        self, part: Message, ctype: str, body: _Body, where: str, depth: int
    ) -> None:
        payload = _raw_payload(part)
        if not isinstance(payload, list):
            recovered = self.recover_boundary(part, ctype, where)
            if recovered is not None:
                self.collect_cids(recovered, where, depth)
                self.walk(recovered, body, where, depth + 1)
                return
            # Nothing to split on: what is there is the body, as plain text.
            self.defects.append(f"{where}: multipart without parts; body read as text")
            data = _to_bytes(payload) if isinstance(payload, str) else b""
            text = _normalise_newlines(decode_text(data, _charset(part)).text)
            if text.strip():
                body.plain.append(text)
            return
        children = [child for child in payload if isinstance(child, Message)]
        subtype = ctype.split("/", 1)[1]
        if subtype == "report":
            for number, child in enumerate(children, 1):
                child_where = f"{where}.{number}"
                if number == 1:
                    self.walk(child, body, child_where, depth + 1, ctype)
                else:
                    self.read_report_part(child, _content_type(child), child_where)
            return
        if subtype == "alternative":
            bodies: list[_Body] = []
            for number, child in enumerate(children, 1):
                child_body = _Body()
                self.walk(child, child_body, f"{where}.{number}", depth + 1, ctype)
                bodies.append(child_body)
            plain = [item for item in bodies if item.plain]
            html = [item for item in bodies if item.html]
            if plain:
                body.plain.extend(plain[0].plain)
            if html:
                body.html.extend(html[-1].html)
            if not plain and not html:
                for item in bodies:
                    body.other.extend(item.other)
            return
        for number, child in enumerate(children, 1):
            self.walk(child, body, f"{where}.{number}", depth + 1, ctype)

    def recover_boundary(self, part: Message, ctype: str, where: str) -> Message | None:
        payload = _raw_payload(part)
        if not isinstance(payload, str):
            return None
        declared = part.get_boundary()
        boundary = _sniff_boundary(payload, declared)
        if boundary is None:
            return None
        self.defects.append(
            f"{where}: declared boundary {declared!r} not found; used {boundary!r} found in the body"
        )
        head = _to_bytes(f'Content-Type: {ctype}; boundary="{boundary}"\n\n')
        try:
            recovered = _parse_bytes(head + _to_bytes(payload))
        except Exception:
            return None
        if not recovered.is_multipart():
            return None
        self._keep.append(recovered)
        return recovered

    def walk_leaf(
        self, part: Message, ctype: str, body: _Body, where: str, *, in_related: bool
    ) -> None:
        disposition = _disposition(part)
        filename = _filename(part)
        cid = _content_id(part)
        maintype = ctype.split("/", 1)[0]
        if disposition != "attachment" and not filename:
            if ctype == "text/plain":
                body.plain.append(self.part_text(part, where))
                return
            if ctype == "text/html":
                body.html.append(self.part_text(part, where))
                return
            if ctype in _ALT_TEXT_TYPES:
                body.other.append(_strip_enriched(self.part_text(part, where)))
                return
            if maintype == "text":
                # Unnamed text/watch-html, text/calendar, ...: readable, not a file.
                body.other.append(self.part_text(part, where))
                return
        # Referenced from the HTML by cid:, or a Content-ID'd resource of a
        # multipart/related (some senders never reference theirs): shown, not saved.
        inline = (
            disposition != "attachment"
            and cid is not None
            and (cid.lower() in self.cids or in_related)
        )
        payload = self.payload_bytes(part, where, is_text=False)
        cte = str(part.get("content-transfer-encoding") or "").strip().lower()
        if not filename and cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
            try:
                raw = _raw_payload(part)
                filename = _uudecode(_to_bytes(raw))[1] if isinstance(raw, str) else ""
            except Exception:
                filename = ""
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=ctype,
                size=len(payload),
                content_id=cid,
                inline=inline,
                payload=payload,
            )
        )

    def inner_message(self, part: Message, where: str) -> Message | None:
        """The message inside a message/rfc822 part, decoding a forbidden CTE first."""
        cte = str(part.get("content-transfer-encoding") or "").strip().lower()
        payload = _raw_payload(part)
        if cte not in ("", "7bit", "8bit", "binary"):
            data = self.payload_bytes(part, where, is_text=False)
            self.defects.append(f"{where}: message/rfc822 part with {cte} encoding decoded")
            try:
                inner = _parse_bytes(data)
            except Exception:
                return None
            self._keep.append(inner)
            return inner
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            try:
                inner = _parse_bytes(_to_bytes(payload))
            except Exception:
                return None
            self._keep.append(inner)
            return inner
        return None

    def add_forwarded(self, part: Message, where: str) -> None:
        inner = self.inner_message(part, where)
        data = _serialise(inner) if inner is not None else b""
        filename = _filename(part)
        if not filename and inner is not None:
            subject = _Headers(inner, None, []).text("subject")
            filename = (re.sub(r"[\\/:*?\"<>|]", "_", subject)[:100] or "message") + ".eml"
        self.attachments.append(
            Attachment(
                filename=filename or "message.eml",
                content_type=_content_type(part),
                size=len(data),
                content_id=_content_id(part),
                inline=False,
                payload=data,
            )
        )

    def read_report_part(self, part: Message, ctype: str, where: str) -> None:
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self.report.has_dsn = True
            self.report.status_texts.append(self.report_text(part, where))
        elif ctype in (
            "message/disposition-notification",
            "message/global-disposition-notification",
        ):
            self.report.has_mdn = True
            text = self.report_text(part, where)
            self.report.status_texts.append(text)
            match = re.search(
                r"^\s*Original-Message-ID\s*:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE
            )
            if match and self.report.original_message_id is None:
                self.report.original_message_id = _message_id(match.group(1))
        elif ctype in _MESSAGE_TYPES or ctype in (
            "message/rfc822-headers",
            "message/global-headers",
        ):
            inner = self.inner_message(part, where)
            if inner is not None:
                self.note_original(_Headers(inner, None, []).raw("message-id"))
        elif ctype == "text/rfc822-headers":
            text = self.part_text(part, where)
            try:
                headers = HeaderParser(policy=_POLICY).parsestr(text)
            except Exception:
                return
            self.note_original(_Headers(headers, None, []).raw("message-id"))

    def note_original(self, value: str | None) -> None:
        message_id = _message_id(value)
        if message_id is not None and self.report.original_message_id is None:
            self.report.original_message_id = message_id

    def report_text(self, part: Message, where: str) -> str:
        payload = _raw_payload(part)
        if isinstance(payload, list):
            blocks = [_serialise(item) for item in payload if isinstance(item, Message)]
            return _normalise_newlines(decode_text(b"\n".join(blocks)).text)
        return self.part_text(part, where)

    def all_defects(self, message: Message, where: str, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            return
        for defect in getattr(message, "defects", []):
            doc = (type(defect).__doc__ or type(defect).__name__).strip().splitlines()[0]
            self.defects.append(f"{where}: {doc}")
        if _content_type(message) in _MESSAGE_TYPES:
            return
        payload = _raw_payload(message)
        if isinstance(payload, list):
            for number, child in enumerate(payload, 1):
                if isinstance(child, Message):
                    self.all_defects(child, f"{where}.{number}", depth + 1)


# ----------------------------------------------------------------------------- entry

_FINAL_RECIPIENT_RE = re.compile(
    r"^\s*(?:Final|Original)-Recipient\s*:\s*(?:[\w.-]+\s*;)?\s*<?([^\s<>;]+@[^\s<>;]+)>?",
    re.IGNORECASE | re.MULTILINE,
)
_BODY_MESSAGE_ID_RE = re.compile(r"^\s*Message-ID\s*:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


def _first_charset(message: Message) -> str | None:
    """The message's own charset (for raw 8-bit headers); windows-1252 tells nothing."""
    for part in message.walk():
        charset = _charset(part)
        if charset and label_encoding(charset) != "windows-1252":
            return charset
    return None


def _empty(defects: list[str]) -> ParsedEmail:
    return ParsedEmail(
        message_id=None,
        in_reply_to=None,
        references=(),
        from_name="",
        from_address="",
        from_addresses=(),
        reply_to=(),
        to=(),
        cc=(),
        subject="",
        date=None,
        text="",
        html=None,
        snippet="",
        attachments=(),
        kind="message",
        bounce_original_message_id=None,
        bounce_recipient=None,
        defects=tuple(defects),
    )


#: Headers exposed in ``ParsedEmail.signal_headers`` (bulk mail, auto-replies, SPF/DKIM results).
SIGNAL_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "precedence",
    "auto-submitted",
    "authentication-results",
    "received-spf",
)


def parse_email(raw: bytes) -> ParsedEmail:
    """Read one raw RFC 5322 message. Never raises; see ``ParsedEmail.defects``."""
    defects: list[str] = []
    try:
        return _parse(bytes(raw), defects)
    except Exception as exc:  # the contract is "never raise": report what broke instead
        logger.warning("email parser failed; returning an empty result", exc_info=True)
        defects.append(f"parser failed: {type(exc).__name__}: {exc}")
        return _empty(defects)


def _parse(raw: bytes, defects: list[str]) -> ParsedEmail:
    repaired = _repair_header_block(raw, defects)
    message = _parse_bytes(repaired)
    walker = _Walker(defects)
    walker.all_defects(message, "message")

    hint = _first_charset(message)
    headers = _Headers(message, hint, defects)

    from_boxes = _parse_addresses(headers.unicode("from"), defects)
    subject = headers.text("subject")

    walker.collect_cids(message, "message")
    body = _Body()
    walker.walk(message, body, "message")

    plain = "\n\n".join(text.strip("\n") for text in body.plain if text.strip())
    html_raw = "\n".join(item for item in body.html if item.strip())
    html = _CLEANER.clean(html_raw) if html_raw else None
    if plain:
        text = plain
    elif html:
        text = _html_to_text(html)
    else:
        text = "\n\n".join(item.strip("\n") for item in body.other if item.strip())
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")

    from_address = from_boxes[0].address if from_boxes else ""
    from_name = from_boxes[0].name if from_boxes else ""
    content_type = _content_type(message)
    report_type = (
        (_param(message, "report-type") or "").lower() if content_type == "multipart/report" else ""
    )
    kind = _classify(
        headers,
        subject,
        from_address,
        from_name,
        report_type,
        walker.report.has_dsn,
        walker.report.has_mdn,
    )

    bounce_recipient: str | None = None
    original_id: str | None = None
    if kind in ("bounce", "receipt"):
        original_id = walker.report.original_message_id
        for status in walker.report.status_texts if kind == "bounce" else []:
            match = _FINAL_RECIPIENT_RE.search(status)
            if match:
                bounce_recipient = match.group(1).lower()
                break
        if bounce_recipient is None and kind == "bounce":
            failed = _parse_addresses(headers.unicode("x-failed-recipients"), defects)
            if failed:
                bounce_recipient = failed[0].address
        if original_id is None and kind == "bounce":
            match = _BODY_MESSAGE_ID_RE.search(text)
            if match:
                original_id = _message_id(match.group(1))

    reply_boxes = _parse_addresses(headers.unicode("reply-to"), defects)
    sender_boxes = _parse_addresses(headers.unicode("sender"), defects)
    signals = {name: headers.text(name) for name in SIGNAL_HEADERS if headers.has(name)}
    return ParsedEmail(
        message_id=_message_id(headers.raw("message-id")),
        in_reply_to=next(iter(_canonical_ids(headers.raw("in-reply-to"))), None),
        references=tuple(_canonical_ids(headers.raw("references"))),
        from_name=from_name,
        from_address=from_address,
        from_addresses=tuple(box.address for box in from_boxes),
        reply_to=tuple(box.address for box in reply_boxes),
        to=tuple(box.address for box in _parse_addresses(headers.unicode("to"), defects)),
        cc=tuple(box.address for box in _parse_addresses(headers.unicode("cc"), defects)),
        subject=subject,
        date=_parse_date(headers.raw("date")),
        text=text,
        html=html,
        snippet=make_snippet(text),
        attachments=tuple(walker.attachments),
        kind=kind,
        bounce_original_message_id=original_id,
        bounce_recipient=bounce_recipient,
        defects=tuple(dict.fromkeys(defects)),
        reply_to_name=reply_boxes[0].name if reply_boxes else "",
        sender_name=sender_boxes[0].name if sender_boxes else "",
        sender_address=sender_boxes[0].address if sender_boxes else "",
        signal_headers=signals,
    )
