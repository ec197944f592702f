"""SMTP delivery of replies (aiosmtplib): TLS or STARTTLS, one sender per mailbox.

``build_reply`` makes the RFC 5322 message: our own Message-ID (generated once
when the reply is queued, so a retried delivery carries the same id and
receivers can drop the copy), ``In-Reply-To``/``References`` for threading,
``Reply-To`` pointing at the shared mailbox, and the ``[#1042]`` subject tag
that threads a customer's answer even when their client drops the headers.
"""

from __future__ import annotations

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


def new_message_id(mailbox: MailboxSettings, inquiry_id: int) -> str:
    domain = mailbox.from_address.rpartition("@")[2] or "claimdesk.local"
    return f"<claimdesk.{inquiry_id}.{secrets.token_hex(8)}@{domain}>"


def build_reply(mailbox: MailboxSettings, mail: OutgoingEmail) -> EmailMessage:
    msg = EmailMessage()
    user, _, domain = mailbox.from_address.partition("@")
    sender = Address(display_name=mailbox.from_name, username=user, domain=domain)
    msg["From"] = sender
    msg["Reply-To"] = sender
    to_user, _, to_domain = mail.to_address.partition("@")
    msg["To"] = Address(display_name=mail.to_name, username=to_user, domain=to_domain)
    msg["Subject"] = mail.subject
    msg["Message-ID"] = mail.message_id
    if mail.date is not None:
        msg["Date"] = format_datetime(mail.date)
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    msg["Auto-Submitted"] = "no"
    msg["X-Mailer"] = "claimdesk"
    msg.set_content(mail.text)
    return msg


async def send_email(mailbox: MailboxSettings, message: EmailMessage) -> None:
    """Send through the mailbox's SMTP server; ``DeliveryError`` says whether a retry can help."""
    if not mailbox.smtp_host:
        raise DeliveryError(f"mailbox {mailbox.name!r} has no smtp_host", permanent=True)
    tls_context = ssl.create_default_context()
    try:
        await aiosmtplib.send(
            message,
            hostname=mailbox.smtp_host,
            port=mailbox.smtp_port,
            username=mailbox.smtp_user or None,
            password=mailbox.smtp_password or None,
            use_tls=mailbox.smtp_tls == "tls",
            start_tls=mailbox.smtp_tls == "starttls",
            tls_context=tls_context,
            timeout=mailbox.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"recipient refused: {exc}", permanent=True) from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login failed for {mailbox.name}: {exc.message}") from exc
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
    client = aiosmtplib.SMTP(
        hostname=mailbox.smtp_host,
        port=mailbox.smtp_port,
        use_tls=mailbox.smtp_tls == "tls",
        start_tls=mailbox.smtp_tls == "starttls",
        timeout=mailbox.smtp_timeout_seconds,
        tls_context=ssl.create_default_context(),
    )
    where = f"mailbox {mailbox.name}: SMTP {mailbox.smtp_host}:{mailbox.smtp_port}"
    try:
        await client.connect()
        if mailbox.smtp_user:
            await client.login(mailbox.smtp_user, mailbox.smtp_password)
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return f"{where}: login refused for {mailbox.smtp_user} ({exc.code} {exc.message}); check smtp_user/smtp_password"
    except aiosmtplib.SMTPConnectError as exc:
        return f"{where}: cannot connect ({exc}); check smtp_host/smtp_port and the firewall"
    except ssl.SSLError as exc:
        return f'{where}: TLS failed ({exc.reason}); check smtp_tls ("tls" for 465, "starttls" for 587)'
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return f"{where}: {type(exc).__name__}: {exc}"
    return None
