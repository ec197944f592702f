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

The package, along those lines: ``headers`` (header block repair, field
decoding, ids, dates, MIME parameters), ``addresses``, ``walk`` (the MIME
tree), ``body`` (transfer encodings, body text), ``classify``, ``snippets``,
``model`` (the result types) and ``read`` (the entry point).
"""

from connectors.mail.parse.headers import decode_words
from connectors.mail.parse.model import Attachment, MailKind, ParsedEmail
from connectors.mail.parse.read import parse_email
from connectors.mail.parse.snippets import SNIPPET_LENGTH, make_snippet

__all__ = [
    "SNIPPET_LENGTH",
    "Attachment",
    "MailKind",
    "ParsedEmail",
    "decode_words",
    "make_snippet",
    "parse_email",
]
