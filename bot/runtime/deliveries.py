"""Delivering one outbox row: render the current state and call the channel.

Card posts and updates render the inquiry as it is *now*, so a burst of
changes coalesces into one up-to-date card, and an update whose version is
already shown is skipped. A post never happens twice for the same inquiry and
destination: the CardRef is checked first and written right after; and since the
process may die, or the call time out, after the platform accepted the post but
before the CardRef is written, the row's ``attempted_at`` is committed *before*
the call, and a row that has it first asks the platform for its own earlier post
(``find_posted`` with the outbox key, which went out with the post) and adopts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.runtime.clock import direct_card
from bot.runtime.mail_intake import open_mailbox
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.digest import deliver_group_post
from bot.usecases.notices import deliver_notice, dm_rows
from bot.usecases.replies import outgoing_email
from bot.usecases.undelivered import mark_failed, reply_not_delivered
from bot.usecases.views import card_for
from cards.model import Card
from config.schema import MailboxSettings
from connectors.channels import ChatChannel, DeliveryError, PostedCard
from connectors.mail.imap import ImapError
from connectors.mail.smtp import UnbuildableEmail, build_reply, send_email
from store import inquiries as repo
from store import outbox
from store.engine import transaction
from store.models import CardRef, Inquiry, Lane, Message, Outbox, OutboxState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrySoon(Exception):
    """Not deliverable yet (e.g. an update whose card is still being posted)."""

    seconds: float
    in_flight: bool = False  # the card's post is being sent right now: worth a short wait in place


async def deliver(ctx: AppContext, row: Outbox) -> None:
    """Deliver ``row`` or raise ``DeliveryError`` / ``RetrySoon``."""
    if row.kind == "email.send":
        await _send_email(ctx, row)
    elif row.kind == "email.notify":
        await deliver_notice(ctx, row)  # a nudge/escalation/digest by email (bot.usecases.notices)
    elif row.kind == "email.file_sent":
        await _file_sent_copy(ctx, row)
    elif row.kind in ("card.post", "card.update", "thread.post"):
        await _card(ctx, row)
    elif row.kind == "dm":
        channel = ctx.channels.get(row.channel)
        if channel is None:
            raise DeliveryError(f"channel {row.channel!r} is not configured", permanent=True)
        card = await direct_card(ctx, row)  # escalations carry the inquiry with Claim / Reassign
        await channel.send_direct(
            row.destination,
            card,
            str(row.payload.get("text", "")),
            locale=str(row.payload.get("locale", "en")),
        )
    elif row.kind == "group.post":
        await deliver_group_post(ctx, row)
    else:
        raise DeliveryError(f"unknown outbox kind {row.kind!r}", permanent=True)


async def _card(ctx: AppContext, row: Outbox) -> None:
    channel = ctx.channels.get(row.channel)
    if channel is None:
        raise DeliveryError(f"channel {row.channel!r} is not configured", permanent=True)
    assert row.inquiry_id is not None
    async with transaction(ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, row.inquiry_id)
        ref = (
            await session.exec(
                select(CardRef).where(
                    col(CardRef.inquiry_id) == row.inquiry_id,
                    col(CardRef.platform) == row.channel,
                    col(CardRef.destination) == row.destination,
                )
            )
        ).first()
        card = await card_for(ctx, session, inquiry)
        attempted = None
        if row.kind == "card.post" and ref is None:
            assert row.id is not None
            attempted = await outbox.attempted_at(session, row.id)
        post_state = None
        if ref is None and row.kind != "card.post":
            post_state = (
                await session.exec(
                    select(Outbox.state, Outbox.leased_until).where(
                        col(Outbox.key)
                        == f"card.post:{row.channel}:{row.destination}:{row.inquiry_id}"
                    )
                )
            ).first()
    locale = ctx.locale(inquiry.team)
    if row.kind == "card.post":
        if ref is None:
            await _post_once(ctx, channel, row, card, locale, attempted)
            return
        if int(ref.data.get("version", 0)) >= card.version:
            return  # already posted (a retry after the post succeeded)
        # adopted from an earlier attempt (version unknown) or behind: bring it up to date
        shown = PostedCard(ref.ref, dict(ref.data))
        fresh = await channel.update_card(row.destination, shown, card, locale=locale)
        await _save_ref(ctx, row, fresh or shown, card.version, shown)
        return
    if ref is None:
        if post_state is not None and post_state[0] == OutboxState.PENDING.value:
            leased = post_state[1] is not None and post_state[1] > ctx.clock()
            if row.kind == "card.update" and not leased:
                # The post has not started: it renders the inquiry as it is then, which
                # includes this change. Waiting here would only clog the interactive lane.
                return
            raise RetrySoon(
                1.0, in_flight=leased
            )  # the post is in flight (or a thread note needs its ts)
        return  # never posted (no destination then, or the post failed for good)
    posted = PostedCard(ref.ref, dict(ref.data))
    if row.kind == "thread.post":
        await channel.post_thread(
            row.destination,
            posted,
            str(row.payload.get("text", "")),
            locale=locale,
            mentions=tuple(str(m) for m in row.payload.get("mentions", ()) if m),
        )
        return
    if int(ref.data.get("version", 0)) >= card.version:
        return  # this or a newer state is already shown
    fresh = await channel.update_card(row.destination, posted, card, locale=locale)
    await _save_ref(ctx, row, fresh or posted, card.version, posted)


async def _post_once(
    ctx: AppContext,
    channel: ChatChannel,
    row: Outbox,
    card: Card,
    locale: str,
    attempted: datetime | None,
) -> None:
    assert row.id is not None
    if attempted is not None:  # an earlier attempt may have reached the platform
        earlier = await channel.find_posted(row.destination, row.key, since=attempted)
        if earlier is not None:
            log.info(
                "card post found from an earlier attempt; not posting again",
                extra={"outbox": row.id, "channel": row.channel, "ref": earlier.ref},
            )
            # Saved first with version 0 (what it shows is unknown), then re-rendered: if the
            # update fails, the row's retry finds the ref behind and updates it.
            await _save_ref(ctx, row, earlier, 0)
            fresh = await channel.update_card(row.destination, earlier, card, locale=locale)
            await _save_ref(ctx, row, fresh or earlier, card.version)
            return
    else:
        async with transaction(ctx.sessions) as session:  # the intent, committed first
            await outbox.mark_attempted(session, row.id, ctx.clock())
    posted = await channel.post_card(row.destination, card, locale=locale, idempotency_key=row.key)
    await _save_ref(ctx, row, posted, card.version)


async def _save_ref(
    ctx: AppContext,
    row: Outbox,
    posted: PostedCard,
    version: int,
    shown: PostedCard | None = None,
) -> None:
    """Store where the card lives now (``update_card`` may have moved it: WeCom's fresh card,
    its spent codes). ``shown``: the ref the call started from; codes a click stored with the
    card meanwhile (``data["offered"]``, see ``bot.interfaces.interactions``) are kept, not overwritten."""
    now = ctx.clock()
    assert row.inquiry_id is not None
    async with transaction(ctx.sessions) as session:
        stmt = select(CardRef).where(
            col(CardRef.inquiry_id) == row.inquiry_id,
            col(CardRef.platform) == row.channel,
            col(CardRef.destination) == row.destination,
        )
        if ctx.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        ref = (await session.exec(stmt)).first()
        data = {**posted.data, "version": version}
        if ref is not None and shown is not None:
            seen = [list(o) for o in shown.data.get("offered", [])]
            arrived = [list(o) for o in ref.data.get("offered", []) if list(o) not in seen]
            if arrived:
                data["offered"] = [*data.get("offered", []), *arrived]
        if ref is None:
            session.add(
                CardRef(
                    inquiry_id=row.inquiry_id,
                    platform=row.channel,
                    destination=row.destination,
                    ref=posted.ref,
                    data=data,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            if int(ref.data.get("version", 0)) > version:
                data["version"] = ref.data["version"]
            ref.ref, ref.data, ref.updated_at = posted.ref, data, now
            session.add(ref)


async def _send_email(ctx: AppContext, row: Outbox) -> None:
    message_pk = int(row.payload["message"])
    async with transaction(ctx.sessions) as session:
        message = await session.get(Message, message_pk)
    if message is None:
        raise DeliveryError(f"message {message_pk} is gone", permanent=True)
    if message.delivery == "sent":
        return
    mailbox = ctx.settings.mailbox(row.destination)
    if mailbox is None:
        raise DeliveryError(f"mailbox {row.destination!r} is no longer configured", permanent=True)
    email = _reply_email(mailbox, message, str(row.payload.get("to_name", "")))
    try:
        await send_email(mailbox, email)
    except DeliveryError as exc:
        if not exc.permanent:  # a dead row is recorded by ``mark_email_failed``
            await _mark_email_retrying(ctx, row, message_pk, str(exc))
        raise
    async with transaction(ctx.sessions) as session:
        stored = await session.get(Message, message_pk)
        if stored is not None:
            stored.delivery = "sent"
            session.add(stored)
            await _accepted(ctx, session, stored)
        if mailbox.imap_host and mailbox.sent_folder:
            await outbox.enqueue(
                session,
                key=f"email.file_sent:{message_pk}",
                channel="imap",
                kind="email.file_sent",
                destination=mailbox.name,
                inquiry_id=row.inquiry_id,
                now=ctx.clock(),
                lane=Lane.BULK,
                payload=dict(row.payload),
            )
    ctx.outbox_ready.fire()


async def _accepted(ctx: AppContext, session: AsyncSession, message: Message) -> None:
    """The SMTP server accepted a rep's reply: it counts as the first response now (not when
    it was queued), and every surface drops its "sending…" note.

    In the transaction that marks the message sent, so it is never lost nor sent twice:
    hence a plain conditional update (no compare-and-set that a concurrent click could
    make fail, which would roll back the "sent" mark and send the mail again)."""
    if not message.author:
        return  # automatic mail (out-of-hours acknowledgement) is no response by a rep
    now = ctx.clock()
    inquiry = await repo.get_inquiry(session, message.inquiry_id)
    first = inquiry.first_reply_at is None
    values: dict[str, object] = {"version": col(Inquiry.version) + 1, "updated_at": now}
    if first:
        values["first_reply_at"] = now
    await session.exec(
        update(Inquiry)
        .where(col(Inquiry.id) == message.inquiry_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    inquiry = await repo.get_inquiry(session, message.inquiry_id)
    data: dict[str, object] = {"message": message.id}
    if first:
        data["first_response_seconds"] = int((now - inquiry.received_at).total_seconds())
    repo.add_event(session, inquiry, at=now, actor="system", kind="reply_delivered", data=data)
    await queue_card_updates(session, ctx, inquiry, lane=Lane.INTERACTIVE, note="")
    ctx.changed.fire()


async def _mark_email_retrying(ctx: AppContext, row: Outbox, message_pk: int, error: str) -> None:
    """A failed attempt that will be retried: the message and the card say so with the
    server's words (the first failure is an event and a card update; later ones only
    refresh the words on the message)."""
    async with transaction(ctx.sessions) as session:
        stored = await session.get(Message, message_pk)
        if stored is None or stored.delivery == "sent" or stored.delivery.startswith("failed"):
            return
        first = not stored.delivery.startswith("retrying")
        stored.delivery = f"retrying: {error[:300]}"
        session.add(stored)
        if first and row.inquiry_id is not None:
            inquiry = await repo.get_inquiry(session, row.inquiry_id)
            repo.add_event(
                session,
                inquiry,
                at=ctx.clock(),
                actor="system",
                kind="delivery_retrying",
                data={"error": error[:500]},
            )
            updated = await repo.change(session, inquiry, ctx.clock())
            await queue_card_updates(session, ctx, updated, lane=Lane.INTERACTIVE, note="")
    ctx.changed.fire()
    ctx.outbox_ready.fire()


def _reply_email(mailbox: MailboxSettings, message: Message, to_name: str) -> EmailMessage:
    """The stored reply as an email; one that cannot be built fails for good, at once."""
    try:
        return build_reply(mailbox, outgoing_email(message, to_name))
    except UnbuildableEmail as exc:
        raise DeliveryError(str(exc), permanent=True) from exc


async def _file_sent_copy(ctx: AppContext, row: Outbox) -> None:
    """Append the sent reply to the mailbox's Sent folder, so the shared mailbox stays the full record."""
    mailbox = ctx.settings.mailbox(row.destination)
    if mailbox is None or not mailbox.imap_host:
        return
    async with transaction(ctx.sessions) as session:
        message = await session.get(Message, int(row.payload["message"]))
    if message is None:
        return
    raw = _reply_email(mailbox, message, str(row.payload.get("to_name", ""))).as_bytes()
    box = open_mailbox(mailbox)
    try:
        await box.connect()
        await box.append(mailbox.sent_folder, raw, (r"\Seen",))
    except ImapError as exc:
        raise DeliveryError(f"copy to {mailbox.sent_folder} failed: {exc}") from exc
    finally:
        await box.close()


async def mark_email_failed(ctx: AppContext, row: Outbox, error: str) -> None:
    """Record a permanently failed reply on its message, so the card says so."""
    if row.kind != "email.send":
        return
    async with transaction(ctx.sessions) as session:
        stored = await session.get(Message, int(row.payload["message"]))
        if row.inquiry_id is None:  # not an inquiry's reply: only the message says so
            mark_failed(session, stored, error)
        else:
            inquiry = await repo.get_inquiry(session, row.inquiry_id)
            # the version bumps, so every surface re-renders with the failure note
            updated = await reply_not_delivered(ctx, session, inquiry, stored, error, ctx.clock())
            await queue_card_updates(
                session,
                ctx,
                updated,
                lane=Lane.INTERACTIVE,
                note=f"Reply delivery failed: {error[:200]}",
            )
            if stored is not None and stored.author:
                await _tell_author(ctx, session, updated, stored.author, error)
    ctx.changed.fire()
    ctx.outbox_ready.fire()


async def _tell_author(
    ctx: AppContext, session: AsyncSession, inquiry: Inquiry, rep_id: str, error: str
) -> None:
    """A direct message to the rep who wrote the failed reply, on each platform of the team."""
    rep = ctx.settings.rep(rep_id)
    if rep is None or inquiry.id is None:
        return
    try:
        team = ctx.settings.team(inquiry.team)
    except KeyError:
        return
    text = f"Your reply to #{inquiry.id} was not sent: {error[:300]}"
    rows = dm_rows(
        ctx,
        team,
        rep,
        key=f"reply_failed:{inquiry.id}:v{inquiry.version}",
        inquiry_id=inquiry.id,
        now=ctx.clock(),
        lane=Lane.INTERACTIVE,
        payload={"text": text, "locale": team.locale, "rep": rep_id},
    )
    if rows:
        await session.flush()  # as ``outbox.enqueue`` does: the session's pending objects first
        await outbox.enqueue_many(session, rows)
