"""Reps away: their open items go to their backup, or back to the pool, once per tick."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.runtime.clock.people import stand_in
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.notices import tell_assignee
from bot.usecases.sla import due_after, sla_for
from cards.strings import text
from store import inquiries as repo
from store.engine import transaction
from store.lifecycle import OPEN_STATUSES
from store.models import Inquiry, Lane, Status

OPEN_VALUES = sorted(s.value for s in OPEN_STATUSES)


async def locked(session: AsyncSession, *conditions: Any) -> Inquiry | None:
    """The inquiry matching ``conditions``, row-locked on PostgreSQL (skipped when another has it)."""
    stmt = select(Inquiry).where(*conditions).execution_options(populate_existing=True)
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return (await session.exec(stmt)).first()


async def hand_over_from_away(ctx: AppContext, now: datetime, everyone: frozenset[str]) -> int:
    """Open items of the reps in ``everyone`` (all reps away) go to their backup, or back to
    the pool."""
    away = sorted(everyone)
    if not away:
        return 0
    async with transaction(ctx.readers) as session:
        ids = (
            await session.exec(
                select(Inquiry.id).where(
                    col(Inquiry.assignee).in_(away), col(Inquiry.status).in_(OPEN_VALUES)
                )
            )
        ).all()
    done = 0
    for inquiry_id in ids:
        if inquiry_id is None:
            continue
        try:
            done += await _hand_over(ctx, inquiry_id, away, everyone, now)
        except repo.Conflict:
            continue
    return done


async def _hand_over(
    ctx: AppContext, inquiry_id: int, away: list[str], everyone: frozenset[str], now: datetime
) -> int:
    async with transaction(ctx.sessions) as session:
        inquiry = await locked(
            session,
            col(Inquiry.id) == inquiry_id,
            col(Inquiry.assignee).in_(away),
            col(Inquiry.status).in_(OPEN_VALUES),
        )
        if inquiry is None or inquiry.assignee is None:
            return 0
        team = ctx.settings.team(inquiry.team)
        locale = team.locale
        gone = inquiry.assignee
        backup = stand_in(ctx, gone, everyone)
        if backup != gone and backup in team.rep_ids():
            updated = await repo.change(session, inquiry, now, assignee=backup)
            note = text(
                locale,
                "clock.handed_over",
                number=inquiry_id,
                away=ctx.rep_name(gone),
                name=ctx.rep_name(backup),
            )
        else:
            claim_due = due_after(
                team,
                now,
                sla_for(team, inquiry.priority).claim_within,
                priority=inquiry.priority,
            )
            updated = await repo.change(
                session,
                inquiry,
                now,
                status=Status.NEW.value,
                assignee=None,
                claim_due_at=claim_due,
                reply_due_at=None,
                next_due_at=claim_due,
                escalation_level=0,
            )
            backup = ""
            note = text(locale, "clock.handed_to_pool", number=inquiry_id, away=ctx.rep_name(gone))
        repo.add_event(
            session,
            updated,
            at=now,
            actor="system",
            kind="handed_over",
            before=gone,
            after=backup,
            data={"reason": "away", "status_before": inquiry.status},
        )
        await queue_card_updates(session, ctx, updated, lane=Lane.BULK, note=note)
        if backup:
            await tell_assignee(
                session,
                ctx,
                updated,
                backup,
                note,
                key=f"handed_over:{inquiry_id}:v{updated.version}",
            )
    return 1
