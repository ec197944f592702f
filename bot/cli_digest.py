"""``claimdesk digest``: a team's digest printed from the store, or posted now (``--send``).

Printing reads the store directly; ``--send`` needs the channels and the outbox worker,
so only then is the whole ``Service`` (``bot.app``) booted. This sits beside the CLI,
above the use cases, because it composes them with the app.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.app import Service
from bot.context import AppContext
from bot.usecases.digest import compute_digest, period_of, queue_digest
from cards.digest_card import render_digest_text
from config.schema import Settings, TeamSettings
from store.engine import transaction

log = logging.getLogger(__name__)


async def digest_for_cli(
    settings: Settings, team_name: str, *, day: date | None = None, send: bool = False
) -> str:
    """``claimdesk digest --team T [--date X] [--send]``: the digest text.

    No ``day``: what today's digest covers (the days since the previous working day, up to
    yesterday). ``day``: that day alone. Printing reads the store directly; ``--send`` also
    posts it to the team's channels now (a manual post, whatever the scheduler did), which
    needs the channels and the outbox worker, so only then is a ``Service`` booted.
    """
    team = settings.team(team_name)
    if send:
        return await _send_digest(settings, team, day)
    from store.engine import create_engine, create_session_factory
    from store.migrate import migrate

    engine = create_engine(settings.store.url)
    try:
        await migrate(engine)
        ctx = AppContext(settings=settings, engine=engine, sessions=create_session_factory(engine))
        when, now, period = _cli_period(team, day, ctx.clock())
        report = await compute_digest(ctx, team, when, now=now, period=period)
    finally:
        await engine.dispose()
    return render_digest_text(report)


def _cli_period(
    team: TeamSettings, day: date | None, now: datetime
) -> tuple[date, datetime, tuple[date, date]]:
    today = now.astimezone(ZoneInfo(team.timezone)).date()
    if day is None:
        return today, now, period_of(team, today)
    return day, now, (day, day)


async def _send_digest(settings: Settings, team: TeamSettings, day: date | None) -> str:
    service = await Service.create(settings)
    try:
        ctx = service.ctx
        when, now, period = _cli_period(team, day, ctx.clock())
        report = await compute_digest(ctx, team, when, now=now, period=period)
        async with transaction(ctx.sessions) as session:
            posts = await queue_digest(
                session, ctx, team, report, key_suffix=f":manual:{now.isoformat()}"
            )
        if posts:
            await service.worker.drain(max_seconds=60)
        else:
            log.warning(
                "team has no chat destination; the digest was only printed",
                extra={"team": team.name},
            )
        return render_digest_text(report)
    finally:
        await service.close()
