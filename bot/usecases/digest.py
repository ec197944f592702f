"""Daily digests: what each team did, posted once a day in its channel at ``digest_at``.

When: on each working day of the team's calendar (a day with business hours,
make-up days included), at ``digest_at`` in the team's time zone. A digest
covers the local days since the previous working day, so Tuesday's covers
Monday and Monday's covers Friday to Sunday: every day is covered exactly once
and nobody gets a digest on a Sunday.

Who: each of the team's chat destinations, and by email each lead and manager
who cannot be reached on the team's chat (everyone, in a web-only setup).

Once: each digest inserts ``JobRun(key="digest:{team}:{date}")`` in the same
transaction as its outbox rows, so with several processes it is posted once.
A process that was stopped catches up when it comes back: every missed slot
since the team's last digest (at most ``CATCH_UP`` of them) is posted once and
says it is late. On the very first start, a slot more than ``FIRST_RUN_GRACE``
old is recorded as skipped instead of posting news nobody asked for.

Late: only a digest posted by the scheduler more than ``LATE_AFTER`` after its slot (a
catch-up after a stop) says "Sent late"; a digest printed or sent by hand never does.

The CLI (``claimdesk digest``): with no date it shows what today's digest covers (yesterday;
on a Monday, Friday to Sunday); ``--date X`` shows the day X itself. It reads the store
directly and boots no ``Service`` unless ``--send`` asks for delivery.

Numbers: time to claim and to first reply are measured from receipt in SLA
time (business time when the team counts only that); the median and the p90
use the nearest-rank method. SLA breaches are claims and first replies in the
period that came later than the team's SLA, plus items still waiting now whose
deadline passed during the period. An item that stays overdue is so counted once, on
the day its deadline passed (and again on the day it is finally claimed or answered
late), not on every later day.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.notices import notice_row, reachable_on_chat
from bot.usecases.sla import calendar_for, duration, sla_elapsed, sla_for
from cards.digest_card import (
    DigestItem,
    DigestReport,
    DigestRepRow,
    build_digest_card,
    render_digest_text,
)
from config.schema import TeamSettings
from connectors.channels import DeliveryError
from store import outbox
from store.engine import transaction
from store.job_runs import claim_job
from store.lifecycle import OPEN_STATUSES
from store.models import Event, Inquiry, JobRun, Lane, Outbox, Status

log = logging.getLogger(__name__)

CATCH_UP = 7
FIRST_RUN_GRACE = timedelta(hours=1)
LATE_AFTER = timedelta(minutes=5)
_LIST = 5
_OPEN_VALUES = sorted(s.value for s in OPEN_STATUSES)


def digest_key(team: str, day: date) -> str:
    return f"digest:{team}:{day.isoformat()}"


def is_digest_day(team: TeamSettings, day: date) -> bool:
    return bool(calendar_for(team).hours_on(day))


def slot_instant(team: TeamSettings, day: date) -> datetime:
    """When the digest of ``day`` is due (aware; local ``digest_at``, DST-safe)."""
    return datetime.combine(day, team.digest_at, tzinfo=ZoneInfo(team.timezone))


def latest_slot(team: TeamSettings, now: datetime) -> date | None:
    """The newest digest day whose time has come by ``now``."""
    today = now.astimezone(ZoneInfo(team.timezone)).date()
    for back in range(15):
        day = today - timedelta(days=back)
        if is_digest_day(team, day) and slot_instant(team, day) <= now:
            return day
    return None


def period_of(team: TeamSettings, day: date) -> tuple[date, date]:
    """The local dates (first, last) the digest of ``day`` covers."""
    for back in range(1, 15):
        previous = day - timedelta(days=back)
        if is_digest_day(team, previous):
            return previous, day - timedelta(days=1)
    return day - timedelta(days=1), day - timedelta(days=1)


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


async def compute_digest(
    ctx: AppContext,
    team: TeamSettings,
    day: date,
    *,
    now: datetime | None = None,
    period: tuple[date, date] | None = None,
) -> DigestReport:
    """The digest of ``team`` for ``day`` (covering the days before it, or ``period``), read
    from the store. Never marked late: that is for the scheduler's catch-up posts."""
    now = now or ctx.clock()
    zone = ZoneInfo(team.timezone)
    first, last = period or period_of(team, day)
    start = datetime.combine(first, time(0), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
    async with transaction(ctx.readers) as session:
        return await _compute(ctx, session, team, day, first, last, start, end, now, late=False)


async def _compute(
    ctx: AppContext,
    session: AsyncSession,
    team: TeamSettings,
    day: date,
    first: date,
    last: date,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    late: bool,
) -> DigestReport:
    mine = col(Inquiry.team) == team.name
    received = (
        await session.exec(
            select(Inquiry.status, func.count())
            .where(mine, col(Inquiry.received_at) >= start, col(Inquiry.received_at) < end)
            .group_by(col(Inquiry.status))
        )
    ).all()
    by_status = {status: int(n) for status, n in received}
    spam = by_status.get(Status.SPAM.value, 0)
    new = sum(by_status.values()) - spam

    events = (
        await session.exec(
            select(Event.inquiry_id, Event.kind, Event.actor, Event.after).where(
                col(Event.team) == team.name,
                col(Event.at) >= start,
                col(Event.at) < end,
                col(Event.kind).in_(["claimed", "replied", "status", "escalated", "reassigned"]),
            )
        )
    ).all()
    per_rep: dict[str, Counter[str]] = {}
    kinds: dict[str, set[int]] = {"claimed": set(), "replied": set(), "won": set(), "lost": set()}
    escalations = 0
    for inquiry_id, kind, actor, after in events:
        label = after if kind == "status" else kind
        if kind == "escalated":
            escalations += 1
            continue
        if label in kinds:
            kinds[label].add(inquiry_id)
            per_rep.setdefault(actor, Counter())[label] += 1

    claimed_rows = (
        await session.exec(
            select(Inquiry).where(
                mine, col(Inquiry.claimed_at) >= start, col(Inquiry.claimed_at) < end
            )
        )
    ).all()
    to_claim: list[float] = []
    breaches = 0
    for row in claimed_rows:
        assert row.claimed_at is not None
        elapsed = sla_elapsed(team, row.received_at, row.claimed_at, priority=row.priority)
        to_claim.append(elapsed.total_seconds())
        breaches += elapsed > duration(sla_for(team, row.priority).claim_within)

    replied_rows = (
        await session.exec(
            select(Inquiry).where(
                mine, col(Inquiry.first_reply_at) >= start, col(Inquiry.first_reply_at) < end
            )
        )
    ).all()
    to_reply: list[float] = []
    reply_by_rep: dict[str, list[float]] = {}
    for row in replied_rows:
        assert row.first_reply_at is not None
        seconds = sla_elapsed(
            team, row.received_at, row.first_reply_at, priority=row.priority
        ).total_seconds()
        to_reply.append(seconds)
        if row.assignee:
            reply_by_rep.setdefault(row.assignee, []).append(seconds)
        since = row.claimed_at or row.received_at
        late_reply = sla_elapsed(team, since, row.first_reply_at, priority=row.priority)
        breaches += late_reply > duration(sla_for(team, row.priority).first_reply_within)

    # Still waiting, and the deadline passed in this period (not just "by now": an
    # item overdue for a week must not add one breach to every digest of that week).
    passed = min(end, now)
    overdue = (
        await session.exec(
            select(func.count())
            .select_from(Inquiry)
            .where(
                mine,
                (
                    (col(Inquiry.status) == Status.NEW.value)
                    & (col(Inquiry.claim_due_at) >= start)
                    & (col(Inquiry.claim_due_at) < passed)
                )
                | (
                    (col(Inquiry.status) == Status.CLAIMED.value)
                    & col(Inquiry.first_reply_at).is_(None)
                    & (col(Inquiry.reply_due_at) >= start)
                    & (col(Inquiry.reply_due_at) < passed)
                ),
            )
        )
    ).one()
    breaches += int(overdue)

    open_filter = (mine, col(Inquiry.status).in_(_OPEN_VALUES))
    open_now = int(
        (await session.exec(select(func.count()).select_from(Inquiry).where(*open_filter))).one()
    )
    unclaimed_now = int(
        (
            await session.exec(
                select(func.count())
                .select_from(Inquiry)
                .where(mine, col(Inquiry.status) == Status.NEW.value)
            )
        ).one()
    )
    oldest_open = (
        await session.exec(
            select(Inquiry).where(*open_filter).order_by(col(Inquiry.received_at)).limit(_LIST)
        )
    ).all()
    oldest_new = (
        await session.exec(
            select(Inquiry)
            .where(mine, col(Inquiry.status) == Status.NEW.value)
            .order_by(col(Inquiry.received_at))
            .limit(_LIST)
        )
    ).all()
    open_by_rep = dict(
        (
            await session.exec(
                select(Inquiry.assignee, func.count())
                .where(*open_filter, col(Inquiry.assignee).is_not(None))
                .group_by(col(Inquiry.assignee))
            )
        ).all()
    )

    def item(inquiry: Inquiry) -> DigestItem:
        assert inquiry.id is not None
        return DigestItem(
            number=inquiry.id,
            subject=inquiry.subject[:80],
            status=inquiry.status,
            age_seconds=max(0.0, (now - inquiry.received_at).total_seconds()),
            owner=ctx.rep_name(inquiry.assignee),
            url=ctx.link(f"/web/inquiries/{inquiry.id}"),
        )

    reps: list[DigestRepRow] = []
    for rep_id in team.rep_ids():
        counts = per_rep.get(rep_id, Counter())
        line = DigestRepRow(
            rep=rep_id,
            name=ctx.rep_name(rep_id),
            claimed=counts["claimed"],
            replied=counts["replied"],
            won=counts["won"],
            lost=counts["lost"],
            open=int(open_by_rep.get(rep_id, 0)),
            median_reply_seconds=_median(reply_by_rep.get(rep_id, [])),
        )
        if line.claimed or line.replied or line.won or line.lost or line.open:
            reps.append(line)

    slot = slot_instant(team, day)
    return DigestReport(
        team=team.name,
        team_title=team.title,
        locale=team.locale,
        day=day.isoformat(),
        period_first=first.isoformat(),
        period_last=last.isoformat(),
        new=new,
        spam=spam,
        claimed=len(kinds["claimed"]),
        replied=len(kinds["replied"]),
        won=len(kinds["won"]),
        lost=len(kinds["lost"]),
        claim_median_seconds=_median(to_claim),
        claim_p90_seconds=_percentile(to_claim, 0.9),
        reply_median_seconds=_median(to_reply),
        reply_p90_seconds=_percentile(to_reply, 0.9),
        breaches=breaches,
        escalations=escalations,
        open_now=open_now,
        unclaimed_now=unclaimed_now,
        oldest_open=tuple(item(i) for i in oldest_open),
        oldest_unclaimed=tuple(item(i) for i in oldest_new),
        reps=tuple(reps),
        late=late,
        due_at=slot.strftime("%Y-%m-%d %H:%M %Z"),
    )


async def queue_digest(
    session: AsyncSession,
    ctx: AppContext,
    team: TeamSettings,
    report: DigestReport,
    *,
    key_suffix: str = "",
) -> int:
    """Outbox rows posting ``report`` to each of the team's channels; returns how many."""
    now = ctx.clock()
    count = 0
    for name, channel in ctx.channels.items():
        for dest in channel.destinations(team):
            await outbox.enqueue(
                session,
                key=f"digest:{name}:{dest}:{team.name}:{report.day}{key_suffix}",
                channel=name,
                kind="group.post",
                destination=dest,
                now=now,
                lane=Lane.BULK,
                payload={"digest": report.to_dict()},
            )
            count += 1
    count += await _mail_digest(session, ctx, team, report, key_suffix=key_suffix)
    return count


async def _mail_digest(
    session: AsyncSession,
    ctx: AppContext,
    team: TeamSettings,
    report: DigestReport,
    *,
    key_suffix: str,
) -> int:
    """The digest by email to the team's leads and managers not reachable on its chat
    (all of them when the team has no chat destination; see ``bot.usecases.notices``)."""
    now = ctx.clock()
    body = render_digest_text(report)
    title = body.splitlines()[0] if body else ""
    count = 0
    for rep_id in dict.fromkeys([*team.leads, *team.managers]):
        rep = ctx.settings.rep(rep_id)
        if rep is None or reachable_on_chat(ctx, team, rep):
            continue
        row = notice_row(
            ctx,
            team,
            rep,
            key=f"notify:{rep.id}:digest:{team.name}:{report.day}{key_suffix}",
            what="digest",
            message=body,
            now=now,
            subject=title,
        )
        if row is not None:
            await outbox.enqueue(session, lane=Lane.BULK, **row)
            count += 1
    return count


async def run_digest(
    ctx: AppContext, team: TeamSettings, day: date, now: datetime, *, owner: str
) -> bool:
    """Compute and post the digest of ``day`` unless it was done before; True when this call did it."""
    async with transaction(ctx.sessions) as session:
        key = digest_key(team.name, day)
        if not await claim_job(
            session, key, owner, now, {"team": team.name, "day": day.isoformat()}
        ):
            return False
        first, last = period_of(team, day)
        zone = ZoneInfo(team.timezone)
        start = datetime.combine(first, time(0), tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
        late = now - slot_instant(team, day) > LATE_AFTER
        report = await _compute(ctx, session, team, day, first, last, start, end, now, late=late)
        posts = await queue_digest(session, ctx, team, report)
        await session.exec(
            update(JobRun)
            .where(col(JobRun.key) == key)
            .values(
                detail={
                    "team": team.name,
                    "day": day.isoformat(),
                    "late": report.late,
                    "posts": posts,
                    "new": report.new,
                    "claimed": report.claimed,
                    "replied": report.replied,
                },
            )
        )
    log.info(
        "digest queued", extra={"team": team.name, "day": day.isoformat(), "late": report.late}
    )
    return True


async def _last_digest_day(ctx: AppContext, team: TeamSettings) -> date | None:
    async with transaction(ctx.readers) as session:
        key = (
            await session.exec(
                select(func.max(JobRun.key)).where(col(JobRun.key).like(f"digest:{team.name}:%"))
            )
        ).one()
    if not key:
        return None
    return date.fromisoformat(str(key).rsplit(":", 1)[1])


async def run_due_digests(
    ctx: AppContext, now: datetime, *, owner: str, seen: dict[str, str]
) -> int:
    """Run every digest that is due and not done yet (called by each clock tick)."""
    done = 0
    for team in ctx.settings.teams:
        slot = latest_slot(team, now)
        if slot is None or seen.get(team.name) == slot.isoformat():
            continue
        last = await _last_digest_day(ctx, team)
        if last is None:
            if now - slot_instant(team, slot) > FIRST_RUN_GRACE:
                async with transaction(ctx.sessions) as session:
                    await claim_job(
                        session,
                        digest_key(team.name, slot),
                        owner,
                        now,
                        {"skipped": "first start after the digest time"},
                    )
                seen[team.name] = slot.isoformat()
                continue
            days = [slot]
        else:
            days = []
            day = slot
            while day > last and len(days) < CATCH_UP:
                if is_digest_day(team, day):
                    days.append(day)
                day -= timedelta(days=1)
            days.reverse()
        for day in days:
            done += await run_digest(ctx, team, day, now, owner=owner)
        seen[team.name] = slot.isoformat()
    return done


async def deliver_group_post(ctx: AppContext, row: Outbox) -> None:
    """Post a digest card into a team channel (outbox kind ``group.post``)."""
    channel = ctx.channels.get(row.channel)
    if channel is None:
        raise DeliveryError(f"channel {row.channel!r} is not configured", permanent=True)
    report = DigestReport.from_dict(dict(row.payload["digest"]))
    await channel.post_card(
        row.destination, build_digest_card(report), locale=report.locale, idempotency_key=row.key
    )
