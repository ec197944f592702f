"""The MIME walk: the tree read part by part into body texts, attachments and report parts."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import Compat32
from io import BytesIO

from connectors.mail.charsets import decode_text
from connectors.mail.parse.body import (
    _CID_RE,
    _decode_transfer,
    _normalise_newlines,
    _strip_enriched,
    _unflow,
    _uudecode,
)
from connectors.mail.parse.classify import _ALT_TEXT_TYPES, _MESSAGE_TYPES, _REPORT_TYPES
from connectors.mail.parse.headers import (
    _charset,
    _content_id,
    _content_type,
    _disposition,
    _filename,
    _Headers,
    _message_id,
    _param,
    _to_bytes,
)
from connectors.mail.parse.model import Attachment

_MAX_DEPTH = 40

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
