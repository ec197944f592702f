"""Follow-ups: a rep asks to be reminded of an inquiry at a time; the clock reminds them then.

:func:`set_follow_up` / :func:`apply_follow_up` are the use case (the card's
follow-up status, the API); the clock's step that delivers the reminder lives in
``bot.runtime.clock.steps``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.sla import when_both_open
from cards.strings import text, zoned_time
from store import inquiries as repo
from store.engine import transaction
from store.models import Inquiry, Lane


async def set_follow_up(ctx: AppContext, inquiry_id: int, rep_id: str, at: datetime) -> Inquiry:
    """Ask the clock to remind the owner about ``inquiry_id`` at ``at`` (in working hours)."""
    now = ctx.clock()
    async with transaction(ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, inquiry_id)
        updated, _when = await apply_follow_up(ctx, session, inquiry, rep_id, at, now)
    ctx.changed.fire()
    ctx.outbox_ready.fire()
    return updated


async def apply_follow_up(
    ctx: AppContext,
    session: AsyncSession,
    inquiry: Inquiry,
    rep_id: str,
    at: datetime,
    now: datetime,
    *,
    status: str | None = None,
) -> tuple[Inquiry, str]:
    """Set the follow-up of ``inquiry`` (and ``status`` when given) inside the caller's transaction.

    Returns the updated inquiry and the delivery time in the team's zone (for messages).
    """
    assert inquiry.id is not None
    team = ctx.settings.team(inquiry.team)
    nxt = inquiry.next_due_at
    wanted = when_both_open(team, inquiry.country, at)
    values: dict[str, Any] = {
        "follow_up_at": at,
        "next_due_at": min(nxt, wanted) if nxt is not None else wanted,
    }
    if status is not None and status != inquiry.status:
        values["status"] = status
    updated = await repo.change(session, inquiry, now, **values)
    repo.add_event(
        session,
        updated,
        at=now,
        actor=rep_id,
        kind="follow_up_set",
        before=inquiry.status if "status" in values else "",
        after=updated.status if "status" in values else "",
        data={"at": at.isoformat(), "delivered_at": wanted.isoformat()},
    )
    when = zoned_time(wanted, team.timezone)
    await queue_card_updates(
        session,
        ctx,
        updated,
        lane=Lane.INTERACTIVE,
        note=text(team.locale, "clock.follow_up_set", number=inquiry.id, when=when),
    )
    return updated, when
