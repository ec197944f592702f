"""Reps away from chat: the config's ``away`` flag or the rep's own "I'm away" (stored).

A rep is away when either says so: the admin's ``[[reps]] away = true`` is
for long absences written down in advance, the stored flag (``rep_presence``)
is the rep's own toggle in the web inbox. The clock asks :func:`away_reps`
in each transaction where it decides whom to mention, whom to escalate to and
whose items to hand over, so every process sees a change at its next tick.
Going away hands the rep's open items over with the clock's existing logic
(backup owner, else back to the pool) at its next tick (seconds). The web inbox
asks first, listing what will be handed over (:func:`claimed_items`); coming back
offers the items handed over meanwhile that nobody has worked on since
(:func:`handed_over`), taken back with one click (:func:`take_back`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.sla import due_after, sla_for
from store import inquiries as repo
from store.engine import transaction
from store.lifecycle import OPEN_STATUSES, is_open
from store.models import Event, Inquiry, Lane, RepPresence, Status

log = logging.getLogger(__name__)


_STORED_AWAY = select(RepPresence.rep_id).where(col(RepPresence.away).is_(True))


async def stored_away(session: AsyncSession) -> frozenset[str]:
    """Rep ids whose own away flag is set."""
    rows = await session.exec(_STORED_AWAY)
    return frozenset(rows.all())


async def away_reps(ctx: AppContext, session: AsyncSession) -> frozenset[str]:
    """Everyone away: marked in the config or by themselves."""
    configured = {r.id for r in ctx.settings.reps if r.away}
    return frozenset(configured) | await stored_away(session)


async def is_away(ctx: AppContext, rep_id: str) -> bool:
    """Whether ``rep_id`` is away (config or own flag)."""
    rep = ctx.settings.rep(rep_id)
    if rep is not None and rep.away:
        return True
    async with transaction(ctx.readers) as session:
        row = await session.get(RepPresence, rep_id)
    return bool(row is not None and row.away)


async def set_away(ctx: AppContext, rep_id: str, away: bool) -> None:
    """Store the rep's own away flag (an upsert; concurrent toggles: the last one wins)."""
    if ctx.settings.rep(rep_id) is None:
        raise ValueError(f"no rep {rep_id!r}")
    now = ctx.clock()
    for _ in range(2):
        try:
            async with transaction(ctx.sessions) as session:
                row = await session.get(RepPresence, rep_id)
                if row is None:
                    session.add(RepPresence(rep_id=rep_id, away=away, updated_at=now))
                else:
                    row.away, row.updated_at = away, now
                    session.add(row)
            break
        except IntegrityError:
            continue  # inserted concurrently: update it on the second round
    log.info("rep presence changed", extra={"rep": rep_id, "away": away})
    ctx.changed.fire()


@dataclass(frozen=True)
class HeldItem:
    """An open inquiry as the away/back pages list it."""

    number: int
    subject: str
    status: str
    holder: str = ""  # the rep who has it now ("" in the pool)


async def claimed_items(ctx: AppContext, rep_id: str) -> list[HeldItem]:
    """The rep's open claimed inquiries: what "I'm away" would hand over."""
    async with transaction(ctx.readers) as session:
        rows = await session.exec(
            select(Inquiry)
            .where(
                col(Inquiry.assignee) == rep_id,
                col(Inquiry.status).in_([s.value for s in OPEN_STATUSES]),
            )
            .order_by(col(Inquiry.id))
        )
        return [HeldItem(r.id or 0, r.subject, r.status, rep_id) for r in rows.all()]


async def away_since(ctx: AppContext, rep_id: str) -> datetime | None:
    """When the rep's own away flag was set (``None``: not away by their own flag)."""
    async with transaction(ctx.readers) as session:
        row = await session.get(RepPresence, rep_id)
    return row.updated_at if row is not None and row.away else None


def _taken_by_others(handover: Event, later: list[Event], rep_id: str) -> bool:
    """Whether anyone worked on the item after it was handed over (then it stays theirs)."""
    worked = {"claimed", "replied", "reassigned", "status", "released", "taken_back"}
    return any(
        e.kind in worked and e.actor != rep_id
        for e in later
        if e.id is not None and handover.id is not None and e.id > handover.id
    )


async def handed_over(
    ctx: AppContext, rep_id: str, since: datetime, session: AsyncSession | None = None
) -> list[HeldItem]:
    """Open inquiries handed away from ``rep_id`` (away) since ``since`` that nobody has
    worked on since: what "I'm back" offers to take back."""
    if session is None:
        async with transaction(ctx.readers) as own:
            return await handed_over(ctx, rep_id, since, own)
    events = (
        await session.exec(
            select(Event)
            .where(
                col(Event.kind) == "handed_over",
                col(Event.before) == rep_id,
                col(Event.at) >= since,
            )
            .order_by(col(Event.id))
        )
    ).all()
    items: dict[int, HeldItem] = {}
    for handover in events:
        inquiry = await session.get(Inquiry, handover.inquiry_id)
        if inquiry is None or inquiry.id is None or not is_open(inquiry.status):
            continue
        later = list(
            (
                await session.exec(
                    select(Event).where(
                        col(Event.inquiry_id) == inquiry.id, col(Event.id) > (handover.id or 0)
                    )
                )
            ).all()
        )
        if inquiry.assignee == rep_id or _taken_by_others(handover, later, rep_id):
            items.pop(inquiry.id, None)
            continue
        items[inquiry.id] = HeldItem(
            inquiry.id, inquiry.subject, inquiry.status, inquiry.assignee or ""
        )
    return list(items.values())


async def take_back(ctx: AppContext, rep_id: str, numbers: list[int], since: datetime) -> int:
    """Give ``rep_id`` back the items handed over while they were away (one transaction
    each; an item someone worked on in the meantime stays where it is). Returns how many."""
    taken = 0
    for number in numbers:
        try:
            async with transaction(ctx.sessions) as session:
                offered = {i.number for i in await handed_over(ctx, rep_id, since, session)}
                if number not in offered:
                    continue
                inquiry = await repo.get_inquiry(session, number)
                now = ctx.clock()
                values: dict[str, object] = {"assignee": rep_id, "claim_due_at": None}
                if inquiry.status == Status.NEW.value:
                    values.update(status=Status.CLAIMED.value, claimed_at=now)
                    team = ctx.settings.team(inquiry.team)
                    if inquiry.first_reply_at is None:
                        due = due_after(
                            team,
                            now,
                            sla_for(team, inquiry.priority).first_reply_within,
                            priority=inquiry.priority,
                        )
                        values.update(reply_due_at=due, next_due_at=due)
                updated = await repo.change(session, inquiry, now, **values)
                repo.add_event(
                    session,
                    updated,
                    at=now,
                    actor=rep_id,
                    kind="taken_back",
                    before=inquiry.assignee or "",
                    after=rep_id,
                )
                await queue_card_updates(
                    session,
                    ctx,
                    updated,
                    lane=Lane.INTERACTIVE,
                    note=f"{ctx.rep_name(rep_id)} is back and took #{number} back",
                )
            taken += 1
        except repo.Conflict:
            continue  # changed at the same moment: it stays with whoever changed it
    if taken:
        ctx.changed.fire()
        ctx.outbox_ready.fire()
    log.info("rep took items back", extra={"rep": rep_id, "taken": taken})
    return taken
