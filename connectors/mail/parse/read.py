"""The entry point: ``parse_email`` (never raises) puts the walk's findings into a ``ParsedEmail``."""

from __future__ import annotations

import logging
import re
from email.message import Message

from connectors.mail.charsets import label_encoding
from connectors.mail.parse.addresses import _parse_addresses
from connectors.mail.parse.body import _CLEANER, _html_to_text
from connectors.mail.parse.classify import _classify
from connectors.mail.parse.headers import (
    _canonical_ids,
    _charset,
    _content_type,
    _Headers,
    _message_id,
    _param,
    _parse_date,
    _repair_header_block,
)
from connectors.mail.parse.model import ParsedEmail
from connectors.mail.parse.snippets import make_snippet
from connectors.mail.parse.walk import _Body, _parse_bytes, _Walker

logger = logging.getLogger(__name__)

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
