"""Mailbox intake: IMAP messages become inquiries (or join one), exactly once.

Per mailbox one loop: connect -> SELECT -> fetch a batch of UIDs above the
stored ``last_uid`` -> for each message: parse, act on it (ingest / attach a
bounce / drop an auto-reply); then, once per batch, mark the handled messages
processed on the server (one UID STORE or UID MOVE) and store ``last_uid``.
The mark and ``last_uid`` may lag behind ingest but never run ahead of it.
Every step is idempotent (ingest dedupes by Message-ID), so a crash, a
dropped connection or a server restart between any two steps repeats at most
the batch that was not settled and creates nothing twice. Waiting uses
IMAP IDLE where offered, polling otherwise.

UIDVALIDITY change: the stored UIDs mean nothing any more; we scan from the
start again, skipping messages that carry our processed flag, and Message-ID
dedupe keeps anything already ingested from becoming a new inquiry.

First start: messages older than ``backfill_days`` (by Date) are skipped, so
connecting a mailbox with years of history does not flood the team.

Several processes on PostgreSQL: a session-level advisory lock per mailbox
makes exactly one of them poll it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import zlib
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr
from typing import Any

from sqlalchemy import text as sql_text

from bot.context import AppContext
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.ingest import InboundMessage, IngestResult, ingest
from bot.usecases.undelivered import reply_not_delivered
from config.schema import MailboxSettings
from connectors.mail.imap import AddFlag, FetchedMail, ImapError, ImapMailbox, MoveTo, ProcessedMark
from connectors.mail.parse import ParsedEmail, parse_email
from store import inquiries as repo
from store.engine import transaction
from store.models import Lane, MailboxState, Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailOutcome:
    """What happened to one fetched message (for logs and tests)."""

    uid: int
    action: str  # "created", "threaded", "duplicate", "bounce", "skipped:auto_reply", ...
    inquiry_id: int | None = None


def processed_mark(box: MailboxSettings) -> ProcessedMark:
    kind, _, value = box.processed.partition(":")
    return MoveTo(value) if kind == "move" else AddFlag(value or "$Claimdesk")


def open_mailbox(box: MailboxSettings) -> ImapMailbox:
    tls: Any = {"tls": True, "starttls": "starttls", "none": False}[box.imap_tls]
    return ImapMailbox(
        host=box.imap_host,
        port=box.imap_port,
        tls=tls,
        user=box.imap_user,
        password=box.imap_password or None,
        xoauth2_token=box.imap_xoauth2_token or None,
        folder=box.folder,
    )


def _dedupe_key(box: MailboxSettings, parsed: ParsedEmail, mail: FetchedMail) -> str:
    if parsed.message_id:
        key = f"mail:{parsed.message_id}"
        return (
            key
            if len(key) <= 200
            else "mail:sha256:" + hashlib.sha256(parsed.message_id.encode()).hexdigest()
        )
    return f"mail:{box.name}:sha256:{hashlib.sha256(mail.raw).hexdigest()}"


def _mailbox(name: str, address: str) -> str:
    return formataddr((name, address)) if address else ""


def customer_fields(parsed: ParsedEmail) -> dict[str, Any]:
    """Who the customer is, and the headers kept with the message.

    When Reply-To names another address than From (a website form relayed by
    ``forms@``, a colleague's assistant), the customer is Reply-To's mailbox, with
    Reply-To's own display name (never the relay's). From, Sender and Reply-To are
    kept on the stored message as written."""
    reply_to = parsed.reply_to[0] if parsed.reply_to else ""
    differs = bool(reply_to) and reply_to != parsed.from_address
    return {
        "email": reply_to if differs else parsed.from_address,
        "name": parsed.reply_to_name if differs else parsed.from_name,
        "from_address": parsed.from_address,
        "from_name": parsed.from_name,
        "sender": _mailbox(parsed.sender_name, parsed.sender_address),
        "reply_to": _mailbox(parsed.reply_to_name, reply_to),
        "headers": dict(parsed.signal_headers),
    }


class MailboxIntake:
    """The intake loop of one mailbox."""

    def __init__(
        self,
        ctx: AppContext,
        box: MailboxSettings,
        *,
        batch: int = 50,
        idle_seconds: float = 300.0,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 300.0,
    ) -> None:
        self.ctx = ctx
        self.box = box
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.reconnect_delay = reconnect_delay
        """First wait after a failure; it doubles per failure up to ``max_reconnect_delay``."""
        self.max_reconnect_delay = max_reconnect_delay
        self._stop = asyncio.Event()
        self.outcomes: list[MailOutcome] = []

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Poll until stopped, reconnecting with backoff; holds the mailbox's leadership lock on PostgreSQL."""
        delay = self.reconnect_delay
        while not self._stop.is_set():
            try:
                async with self._leadership() as leader:
                    if not leader:
                        await self._sleep(15)
                        continue
                    mailbox = open_mailbox(self.box)
                    try:
                        await mailbox.connect()
                        delay = self.reconnect_delay
                        while not self._stop.is_set():
                            await self.sync_once(mailbox)
                            await self._wait_for_mail(mailbox)
                    finally:
                        await mailbox.close()
            except ImapError as exc:
                log.warning("mailbox %s: %s; retrying in %.0f s", self.box.name, exc, delay)
            except Exception:
                log.exception("mailbox %s intake crashed; retrying in %.0f s", self.box.name, delay)
            await self._sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    async def _wait_for_mail(self, mailbox: ImapMailbox) -> None:
        """IDLE (or poll) until new mail, the IDLE timeout, or ``stop()``: stopping must not wait out an IDLE."""
        waiting = asyncio.ensure_future(mailbox.wait_for_new(self.idle_seconds))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, ImapError):
                    await waiting
        if waiting.done() and not waiting.cancelled():
            waiting.result()  # a lost connection surfaces here and is retried by run()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _leadership(self) -> Any:
        return _MailboxLock(self.ctx, self.box.name)

    async def sync_once(self, mailbox: ImapMailbox) -> list[MailOutcome]:
        """Ingest everything new in the folder; returns what happened to each message."""
        status = await mailbox.select()
        state = await self._load_state()
        first_start = state is None
        last_uid = 0
        if state is not None and state.uidvalidity == status.uidvalidity:
            last_uid = state.last_uid
        elif state is not None:
            log.warning(
                "mailbox %s: UIDVALIDITY changed (%s -> %s); rescanning, already ingested mail is recognised",
                self.box.name,
                state.uidvalidity,
                status.uidvalidity,
            )
        mark = processed_mark(self.box)
        done: list[MailOutcome] = []
        while True:
            mails = await mailbox.fetch_since(last_uid, limit=self.batch)
            if not mails:
                break
            last_uid = await self._sync_batch(
                mailbox, mails, mark, status.uidvalidity, first_start, done
            )
        if first_start and not done:
            await self._save_state(status.uidvalidity, max(0, status.uidnext - 1))
        return done

    async def _sync_batch(
        self,
        mailbox: ImapMailbox,
        mails: list[FetchedMail],
        mark: ProcessedMark,
        uidvalidity: int,
        first_start: bool,
        done: list[MailOutcome],
    ) -> int:
        """Handle a fetched batch in UID order, then mark it and store ``last_uid`` once.

        The processed mark and ``last_uid`` only ever cover messages already handled:
        a crash before they are written makes the next sync fetch those messages
        again, and ingest recognises them (Message-ID dedupe). When handling a
        message fails, the messages before it are settled and the error propagates;
        the failed message is neither marked nor passed by ``last_uid``.
        """
        handled: list[int] = []
        last_handled: int | None = None
        try:
            for mail in mails:
                if isinstance(mark, AddFlag) and mark.flag in mail.flags:
                    outcome = MailOutcome(mail.uid, "skipped:already_processed")
                else:
                    outcome = await self.handle(mail, first_start=first_start)
                    handled.append(mail.uid)
                last_handled = mail.uid
                done.append(outcome)
                self.outcomes.append(outcome)
        except Exception:
            if last_handled is not None:
                try:
                    await self._settle(mailbox, handled, mark, uidvalidity, last_handled)
                except Exception as exc:  # the original error matters more; a re-fetch dedupes
                    log.warning(
                        "mailbox %s: could not mark handled messages processed: %s",
                        self.box.name,
                        exc,
                    )
            raise
        await self._settle(mailbox, handled, mark, uidvalidity, mails[-1].uid)
        return mails[-1].uid

    async def _settle(
        self,
        mailbox: ImapMailbox,
        handled: list[int],
        mark: ProcessedMark,
        uidvalidity: int,
        last_uid: int,
    ) -> None:
        """Mark on the server first, then store ``last_uid``: a crash in between re-fetches
        messages that are already marked (skipped) or moved away (gone), never loses one."""
        if handled:
            await mailbox.mark_processed_many(handled, mark)
        await self._save_state(uidvalidity, last_uid)

    async def handle(self, mail: FetchedMail, *, first_start: bool = False) -> MailOutcome:
        parsed = parse_email(mail.raw)
        if (
            first_start
            and parsed.date is not None
            and self.ctx.clock() - parsed.date > timedelta(days=self.box.backfill_days)
        ):
            return MailOutcome(mail.uid, "skipped:before_backfill")
        if parsed.kind == "bounce":
            return await self._bounce(mail.uid, parsed)
        if parsed.kind in ("auto_reply", "receipt"):
            log.info(
                "mailbox %s: uid %s is an %s; no inquiry", self.box.name, mail.uid, parsed.kind
            )
            return MailOutcome(mail.uid, f"skipped:{parsed.kind}")
        own = {m.from_address.lower() for m in self.ctx.settings.mailboxes}
        if parsed.from_address in own:
            return MailOutcome(mail.uid, "skipped:own_message")
        inbound = InboundMessage(
            source=self.box.name,
            source_kind="mail",
            dedupe_key=_dedupe_key(self.box, parsed, mail),
            **customer_fields(parsed),
            subject=parsed.subject,
            text=parsed.text,
            snippet=parsed.snippet,
            html=parsed.html or "",
            message_id=parsed.message_id or "",
            in_reply_to=parsed.in_reply_to or "",
            references=parsed.references,
            attachments=tuple(
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "inline": a.inline,
                }
                for a in parsed.attachments
            ),
            blobs=tuple(
                (a.filename, a.content_type, a.payload)
                for a in parsed.attachments
                if not a.inline and a.size <= self.box.max_attachment_bytes
            ),
            team=self.box.team,
            mailbox=self.box.name,
        )
        result = await self._ingest(inbound)
        action = "duplicate" if result.duplicate else "threaded" if result.threaded else "created"
        return MailOutcome(mail.uid, action, result.inquiry_id)

    async def _ingest(self, inbound: InboundMessage) -> IngestResult:
        """Ingest; a lost race on the inquiry (the same answer read by a second mailbox at the
        same moment) is retried, and the retry finds the winner's message: a duplicate."""
        for attempt in range(1, 4):
            try:
                return await ingest(self.ctx, inbound)
            except repo.Conflict:
                if attempt == 3:
                    raise
                log.info("mailbox %s: inquiry changed concurrently; retrying", self.box.name)
        raise AssertionError("unreachable")

    async def _bounce(self, uid: int, parsed: ParsedEmail) -> MailOutcome:
        """A bounce of our reply: mark that message failed and tell the owner on the card."""
        original = parsed.bounce_original_message_id
        if not original:
            return MailOutcome(uid, "skipped:bounce_unmatched")
        now = self.ctx.clock()
        async with transaction(self.ctx.sessions) as session:
            inquiry = await repo.find_thread(session, [original])
            if inquiry is None or inquiry.id is None:
                return MailOutcome(uid, "skipped:bounce_unmatched")
            from sqlmodel import col, select

            sent = (
                await session.exec(select(Message).where(col(Message.message_id) == original))
            ).first()
            error = f"bounced by {parsed.bounce_recipient or 'the recipient server'}"
            updated = await reply_not_delivered(
                self.ctx, session, inquiry, sent, error, now, data={"subject": parsed.subject[:200]}
            )
            await queue_card_updates(
                session,
                self.ctx,
                updated,
                lane=Lane.INTERACTIVE,
                note=f"Reply delivery failed: {error}",
            )
        self.ctx.changed.fire()
        self.ctx.outbox_ready.fire()
        return MailOutcome(uid, "bounce", inquiry.id)

    async def _load_state(self) -> MailboxState | None:
        async with transaction(self.ctx.sessions) as session:
            return await session.get(MailboxState, (self.box.name, self.box.folder))

    async def _save_state(self, uidvalidity: int, last_uid: int) -> None:
        async with transaction(self.ctx.sessions) as session:
            state = await session.get(MailboxState, (self.box.name, self.box.folder))
            if state is None:
                state = MailboxState(
                    mailbox=self.box.name, folder=self.box.folder, updated_at=self.ctx.clock()
                )
            state.uidvalidity, state.last_uid, state.updated_at = (
                uidvalidity,
                last_uid,
                self.ctx.clock(),
            )
            session.add(state)


class _MailboxLock:
    """PostgreSQL: hold ``pg_try_advisory_lock`` on a dedicated connection while polling. SQLite: always leader."""

    def __init__(self, ctx: AppContext, name: str) -> None:
        self.ctx = ctx
        self.key = zlib.crc32(f"claimdesk-mailbox:{name}".encode())
        self._conn: Any = None

    async def __aenter__(self) -> bool:
        if self.ctx.engine.dialect.name != "postgresql":
            return True
        self._conn = await self.ctx.engine.connect()
        got = (
            await self._conn.execute(sql_text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        ).scalar()
        await self._conn.commit()
        return bool(got)

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(sql_text("SELECT pg_advisory_unlock_all()"))
                await self._conn.commit()
            finally:
                await self._conn.close()
