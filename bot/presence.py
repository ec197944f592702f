"""Reps away from chat: the config's ``away`` flag or the rep's own "I'm away" (stored).

A rep is away when either says so: the admin's ``[[reps]] away = true`` is
for long absences written down in advance, the stored flag (``rep_presence``)
is the rep's own toggle in the web inbox. The clock asks :func:`away_reps`
in each transaction where it decides whom to mention, whom to escalate to and
whose items to hand over, so every process sees a change at its next tick.
Going away hands the rep's open items over with the clock's existing logic
(backup owner, else back to the pool); coming back changes nothing already
handed over.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from store.engine import transaction
from store.models import RepPresence

log = logging.getLogger(__name__)


async def stored_away(session: AsyncSession) -> frozenset[str]:
    """Rep ids whose own away flag is set."""
    rows = await session.exec(select(RepPresence.rep_id).where(col(RepPresence.away).is_(True)))
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
