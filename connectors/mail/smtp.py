"""SMTP delivery of replies (aiosmtplib): TLS or STARTTLS, one sender per mailbox.

``build_reply`` makes the RFC 5322 message: our own Message-ID (generated once
when the reply is queued, so a retried delivery carries the same id and
receivers can drop the copy), ``In-Reply-To``/``References`` for threading,
``Reply-To`` pointing at the shared mailbox, and the ``[#1042]`` subject tag
that threads a customer's answer even when their client drops the headers.

Login is by password (AUTH PLAIN/LOGIN, chosen by aiosmtplib) or, when the mailbox has
``smtp_xoauth2_token``, by SASL XOAUTH2 (Gmail / Microsoft 365): after EHLO (and
STARTTLS), ``AUTH XOAUTH2 base64("user=U\\x01auth=Bearer T\\x01\\x01")``; a refused token
comes back as a 334 challenge carrying the error, answered with an empty line to get the
final status. The token is never logged.

``build_notification`` makes the emails that stand in for a chat message when a
rep cannot be reached on the team's chat (nudges, escalations, reminders, the
digest): ``Auto-Submitted: auto-generated`` (RFC 3834) so vacation responders
stay quiet, a fixed Message-ID (derived from the outbox key by the caller), a
plain-text body and, when given, an HTML alternative the caller has escaped.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from config.schema import MailboxSettings
from connectors.channels import DeliveryError
from routing.addresses import address_problem
from routing.text_hygiene import clean_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    """A reply ready to send."""

    message_id: str
    to_address: str
    to_name: str
    subject: str
    text: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    date: datetime | None = None
    auto_submitted: bool = False  # an automatic message (RFC 3834): "Auto-Submitted: auto-replied"


def new_message_id(mailbox: MailboxSettings, inquiry_id: int) -> str:
    domain = mailbox.from_address.rpartition("@")[2] or "claimdesk.local"
    return f"<claimdesk.{inquiry_id}.{secrets.token_hex(8)}@{domain}>"


@dataclass(frozen=True)
class Notification:
    """An automatic notice to a rep (plain text; ``html`` optional and already escaped)."""

    message_id: str
    to_address: str
    to_name: str
    subject: str
    text: str
    html: str = ""
    date: datetime | None = None


def notification_message_id(mailbox: MailboxSettings, key: str) -> str:
    """A Message-ID fixed by ``key`` (the outbox key): every retry of one notice carries it."""
    domain = mailbox.from_address.rpartition("@")[2] or "claimdesk.local"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<claimdesk.notice.{digest}@{domain}>"


class UnbuildableEmail(ValueError):
    """The reply cannot be made into an RFC 5322 message: no retry can help."""


def build_reply(mailbox: MailboxSettings, mail: OutgoingEmail) -> EmailMessage:
    """The reply as a message; ``UnbuildableEmail`` says in words what makes that impossible.

    The display name is cleaned to one line (it is cosmetic: a stored name with a line
    break must not cost the customer their answer); the address and subject are not
    rewritten: a bad one is refused.
    """
    problem = address_problem(mail.to_address)
    if problem:
        raise UnbuildableEmail(f"the recipient address {mail.to_address!r}: {problem}")
    try:
        return _build(mailbox, mail)
    except (ValueError, TypeError, IndexError) as exc:
        raise UnbuildableEmail(f"the email cannot be built: {exc}") from exc


def _build(mailbox: MailboxSettings, mail: OutgoingEmail) -> EmailMessage:
    msg = EmailMessage()
    user, _, domain = mailbox.from_address.partition("@")
    sender = Address(display_name=mailbox.from_name, username=user, domain=domain)
    msg["From"] = sender
    msg["Reply-To"] = sender
    to_user, _, to_domain = mail.to_address.partition("@")
    msg["To"] = Address(
        display_name=clean_line(mail.to_name, limit=200), username=to_user, domain=to_domain
    )
    msg["Subject"] = mail.subject
    msg["Message-ID"] = mail.message_id
    if mail.date is not None:
        msg["Date"] = format_datetime(mail.date)
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    msg["Auto-Submitted"] = "auto-replied" if mail.auto_submitted else "no"
    msg["X-Mailer"] = "claimdesk"
    msg.set_content(mail.text)
    return msg


def build_notification(mailbox: MailboxSettings, note: Notification) -> EmailMessage:
    """The notice as a message (``UnbuildableEmail`` when the rep's address is unusable)."""
    problem = address_problem(note.to_address)
    if problem:
        raise UnbuildableEmail(f"the rep's address {note.to_address!r}: {problem}")
    try:
        msg = EmailMessage()
        user, _, domain = mailbox.from_address.partition("@")
        msg["From"] = Address(display_name=mailbox.from_name, username=user, domain=domain)
        to_user, _, to_domain = note.to_address.partition("@")
        msg["To"] = Address(
            display_name=clean_line(note.to_name, limit=200), username=to_user, domain=to_domain
        )
        msg["Subject"] = clean_line(note.subject, limit=300)
        msg["Message-ID"] = note.message_id
        if note.date is not None:
            msg["Date"] = format_datetime(note.date)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"  # Exchange's own "no auto-replies, please"
        msg["X-Mailer"] = "claimdesk"
        msg.set_content(note.text)
        if note.html:
            msg.add_alternative(note.html, subtype="html")
    except (ValueError, TypeError, IndexError) as exc:
        raise UnbuildableEmail(f"the notice cannot be built: {exc}") from exc
    return msg


def _client(mailbox: MailboxSettings) -> aiosmtplib.SMTP:
    # No credentials here: ``_authenticate`` logs in, so XOAUTH2 and passwords share one path.
    return aiosmtplib.SMTP(
        hostname=mailbox.smtp_host,
        port=mailbox.smtp_port,
        use_tls=mailbox.smtp_tls == "tls",
        start_tls=mailbox.smtp_tls == "starttls",
        timeout=mailbox.smtp_timeout_seconds,
        tls_context=ssl.create_default_context(),
    )


def smtp_login_user(mailbox: MailboxSettings) -> str:
    """The SMTP login name: ``smtp_user``, or the mailbox address for an XOAUTH2 token."""
    if mailbox.smtp_user:
        return mailbox.smtp_user
    return mailbox.from_address if mailbox.smtp_xoauth2_token else ""


def xoauth2_initial_response(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial client response, base64-encoded."""
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


async def _auth_xoauth2(client: aiosmtplib.SMTP, user: str, token: str) -> None:
    if "xoauth2" not in client.server_auth_methods:
        offered = " ".join(client.server_auth_methods) or "none"
        raise aiosmtplib.SMTPAuthenticationError(
            504, f"server does not offer AUTH XOAUTH2 (offers: {offered})"
        )
    response = await client.execute_command(
        b"AUTH", b"XOAUTH2", xoauth2_initial_response(user, token)
    )
    if response.code == 334:
        # The challenge carries the server's JSON error; an empty line ends the exchange.
        response = await client.execute_command(b"")
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


async def _authenticate(client: aiosmtplib.SMTP, mailbox: MailboxSettings) -> None:
    """Log in after connect (and STARTTLS): XOAUTH2 when a token is set, else the password."""
    user = smtp_login_user(mailbox)
    if not user:
        return
    await client.ehlo()  # fresh capabilities (after STARTTLS they may differ)
    if mailbox.smtp_xoauth2_token:
        await _auth_xoauth2(client, user, mailbox.smtp_xoauth2_token)
    else:
        await client.login(user, mailbox.smtp_password)


async def send_email(mailbox: MailboxSettings, message: EmailMessage) -> None:
    """Send through the mailbox's SMTP server; ``DeliveryError`` says whether a retry can help."""
    if not mailbox.smtp_host:
        raise DeliveryError(f"mailbox {mailbox.name!r} has no smtp_host", permanent=True)
    client = _client(mailbox)
    try:
        async with client:
            await _authenticate(client, mailbox)
            await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"recipient refused: {exc}", permanent=True) from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"SMTP login failed for {mailbox.name}: {exc.code} {exc.message}"
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {exc.code} {exc.message}", permanent=500 <= exc.code < 600 and exc.code != 552
        ) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryError(
            f"SMTP server {mailbox.smtp_host}:{mailbox.smtp_port} unreachable: {exc}"
        ) from exc


async def check_smtp(mailbox: MailboxSettings) -> str | None:
    """Log in to the mailbox's SMTP server without sending; a readable problem, or None when fine."""
    if not mailbox.smtp_host:
        return f"mailbox {mailbox.name}: smtp_host is empty; replies cannot be sent"
    client = _client(mailbox)
    where = f"mailbox {mailbox.name}: SMTP {mailbox.smtp_host}:{mailbox.smtp_port}"
    secret = "smtp_xoauth2_token" if mailbox.smtp_xoauth2_token else "smtp_password"
    try:
        await client.connect()
        await _authenticate(client, mailbox)
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return f"{where}: login refused for {smtp_login_user(mailbox)} ({exc.code} {exc.message}); check smtp_user/{secret}"
    except aiosmtplib.SMTPConnectError as exc:
        return f"{where}: cannot connect ({exc}); check smtp_host/smtp_port and the firewall"
    except ssl.SSLError as exc:
        return f'{where}: TLS failed ({exc.reason}); check smtp_tls ("tls" for 465, "starttls" for 587)'
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return f"{where}: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None
