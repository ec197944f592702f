"""A reply the customer did not get: refused for good by the SMTP server, or bounced.

The message says so, the timeline records it, and when that reply was the inquiry's
answer (the inquiry is still "replied" and no later reply went out), the inquiry goes
back to the status it had before the reply, with a reply deadline counted from the
customer's last message: the nudges and escalations of an unanswered inquiry resume,
instead of the inquiry waiting on a customer who never heard from us.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.sla import due_after, sla_for
from store import inquiries as repo
from store.models import Event, Inquiry, Message, Status

log = logging.getLogger(__name__)

#: statuses a reply may have been written from and that an undelivered reply returns to
_BACK_TO = {Status.CLAIMED.value, Status.WAITING.value, Status.FOLLOW_UP.value}


async def reply_not_delivered(
    ctx: AppContext,
    session: AsyncSession,
    inquiry: Inquiry,
    message: Message | None,
    error: str,
    now: datetime,
    *,
    data: dict[str, Any] | None = None,
) -> Inquiry:
    """Record that ``message`` (our reply on ``inquiry``) was not delivered; the inquiry
    changed (its version bumped, so every surface re-renders). The caller queues the card
    updates and tells the author."""
    mark_failed(session, message, error)
    values: dict[str, Any] = {}
    back_to = await _status_before(session, inquiry, message)
    if back_to:
        team = ctx.settings.team(inquiry.team)
        since = inquiry.last_customer_message_at or inquiry.received_at
        due = max(
            now,
            due_after(
                team,
                since,
                sla_for(team, inquiry.priority).first_reply_within,
                priority=inquiry.priority,
            ),
        )
        values = {"status": back_to, "reply_due_at": due, "next_due_at": due}
    before = inquiry.status
    updated = await repo.change(session, inquiry, now, **values)
    repo.add_event(
        session,
        updated,
        at=now,
        actor="system",
        kind="delivery_failed",
        before=before if back_to else "",
        after=back_to,
        data={**(data or {}), "error": error[:500]},
    )
    if back_to:
        log.info(
            "undelivered reply: inquiry back to its status before the reply",
            extra={"inquiry": inquiry.id, "status": back_to},
        )
    return updated


def mark_failed(session: AsyncSession, message: Message | None, error: str) -> None:
    """Show on ``message`` (an email we sent) that it was not delivered, and why."""
    if message is not None:
        message.delivery = f"failed: {error[:200]}"
        session.add(message)


async def _status_before(session: AsyncSession, inquiry: Inquiry, message: Message | None) -> str:
    """The status to return to ("" to stay): only while the inquiry is "replied" and
    ``message`` is its latest reply."""
    if message is None or message.id is None or inquiry.status != Status.REPLIED.value:
        return ""
    latest = (
        await session.exec(
            select(Message.id)
            .where(col(Message.inquiry_id) == inquiry.id, col(Message.direction) == "out")
            .order_by(col(Message.id).desc())
            .limit(1)
        )
    ).first()
    if latest != message.id:
        return ""  # a later reply is the answer now
    replied = (
        await session.exec(
            select(Event)
            .where(col(Event.inquiry_id) == inquiry.id, col(Event.kind) == "replied")
            .order_by(col(Event.id).desc())
            .limit(20)
        )
    ).all()
    for event in replied:
        if event.data.get("message") == message.id:
            if event.before in _BACK_TO:
                return event.before
            break
    return Status.CLAIMED.value if inquiry.assignee else ""
