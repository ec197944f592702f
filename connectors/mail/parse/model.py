r"""The typed result of reading an email: ``ParsedEmail``, its ``Attachment``\ s, ``MailKind``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MailKind = Literal["message", "auto_reply", "bounce", "receipt"]
"""What a message is: a person's message, an automatic reply, a bounce, a read receipt."""


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
