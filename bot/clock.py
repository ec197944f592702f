"""The clock: nudges, the escalation ladder, follow-ups, snooze wake-ups, reps away, digests.

A tick asks the database what is due: one query on the indexed
``inquiry.next_due_at <= now``. The due inquiries are handled in chunks
(``ClockSettings.chunk``, 50 by default), one short transaction per chunk: the
chunk is re-read under row locks (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
two processes split the work instead of queueing on it; SQLite serializes
writers anyway) and re-checked (still due?), then :func:`bot.sla.plan` says
which steps are due for each. Each step first inserts a ``JobRun`` row under
its deterministic key (``nudge:{inquiry}:{phase}:{n}``,
``escalate:{inquiry}:{phase}:claim:1`` ...), all keys of the chunk in one
``INSERT ... ON CONFLICT DO NOTHING RETURNING key``; only the transaction that
inserted a key acts on its step. The steps' Events and outbox rows (idempotency
key derived from the step key) are inserted in bulk in that same transaction,
and each inquiry's ``next_due_at`` moves on to its next step with a
compare-and-set on the inquiry's version. So with any number of claimdesk
processes on one PostgreSQL each step happens exactly once, and a crash
between steps loses nothing: the step is still due at the next tick.

When anything in a chunk fails (a lost compare-and-set, a bug, a dropped
connection), the chunk's transaction rolls back as a whole and its inquiries
are handled again one per transaction, so one bad inquiry never holds up the
others and nothing of a failed inquiry is half done.

A process that was stopped does the due work when it comes back: each missed
ladder step once (repeated nudges coalesce into the newest), marked late in
the message and in the Event when it is more than ``late_after`` past due.

The trigger is a plain asyncio loop, not APScheduler: the issue wants the
scheduler to do nothing but trigger, and the database to decide. A loop that
calls :meth:`Scheduler.tick` every ``interval_seconds`` does exactly that, reads
time only from the injected clock (APScheduler's triggers read the wall clock,
which tests could not move), and adds no dependency. Daily digests are not
cron jobs either: each tick computes the team's latest digest slot in its time
zone and runs it once under its ``JobRun`` key (see ``bot.digest``).

Nothing is sent outside the team's business hours: each step's instant is
moved to the next opening (``bot.sla.when_open``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.card_sync import queue_card_updates
from bot.context import AppContext
from bot.presence import away_reps
from bot.sla import ClockState, Plan, Step, due_after, plan, sla_elapsed, sla_for, when_both_open
from bot.views import inquiry_view
from cards.escalation_card import build_escalation_card
from cards.model import Card, Option
from cards.strings import duration_words, text
from config.schema import RepSettings, TeamSettings
from store import inquiries as repo
from store.engine import transaction
from store.lifecycle import OPEN_STATUSES
from store.models import Contact, Event, Inquiry, JobRun, Lane, Outbox, OutboxState, Status

log = logging.getLogger(__name__)

_OPEN_VALUES = sorted(s.value for s in OPEN_STATUSES)


@dataclass
class ClockSettings:
    """Tuning of the scheduler (tests call ``tick`` themselves and never wait for the loop)."""

    interval_seconds: float = 15.0
    batch: int = 500
    chunk: int = 50  # due inquiries handled in one transaction
    max_rounds: int = 20  # batches per tick at most, so one tick always ends
    late_after: timedelta = timedelta(minutes=5)
    digests: bool = True


@dataclass
class TickReport:
    """What one tick did (for logs, metrics, tests and the benchmark)."""

    due: int = 0
    steps: int = 0
    late: int = 0
    handovers: int = 0
    digests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


# -- who is addressed --------------------------------------------------------


def platform_user(platform: str, rep: RepSettings) -> str:
    """The rep's user id on ``platform`` ("" when unknown there).

    Platforms without an id column in the config (the recording channel, the
    web inbox) address reps by their claimdesk id.
    """
    attr = f"{platform}_id"
    if attr in type(rep).model_fields:
        return str(getattr(rep, attr) or "")
    return rep.id


def mention(platform: str, rep: RepSettings) -> str:
    """A real mention on ``platform`` where the rep's id is known, else ``@Name``."""
    user = platform_user(platform, rep)
    if user and platform in ("slack", "wecom"):
        return f"<@{user}>"
    if user and platform == "dingtalk":
        return f"@{user}"
    if user and platform not in ("slack", "wecom", "dingtalk") and user != rep.id:
        return f"@{user}"
    return f"@{rep.name}"


def _stand_in(ctx: AppContext, rep_id: str, away: frozenset[str]) -> str:
    """The rep, or their backup while they are away (once; no chains).

    ``away``: everyone away now (config or own flag, see ``bot.presence``).
    """
    rep = ctx.settings.rep(rep_id)
    if rep is not None and rep.id in away and rep.backup:
        backup = ctx.settings.rep(rep.backup)
        if backup is not None and backup.id not in away:
            return backup.id
    return rep_id


def on_duty(ctx: AppContext, team: TeamSettings, away: frozenset[str]) -> list[RepSettings]:
    """The team's members who are not away (those a nudge mentions)."""
    reps = [ctx.settings.rep(r) for r in team.members]
    return [r for r in reps if r is not None and r.id not in away]


def _ladder(ctx: AppContext, team: TeamSettings, level: int, away: frozenset[str]) -> list[str]:
    people = team.leads if level == 1 else team.managers
    return list(dict.fromkeys(_stand_in(ctx, r, away) for r in people))


def _targets(ctx: AppContext, team: TeamSettings) -> list[tuple[str, str]]:
    return [
        (name, dest)
        for name, channel in ctx.channels.items()
        for dest in channel.destinations(team)
    ]


def _local(team: TeamSettings, at: datetime) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(team.timezone)).strftime("%Y-%m-%d %H:%M %Z")


# -- the scheduler -----------------------------------------------------------


class Scheduler:
    """Ticks the clock: finds due inquiries in the database and does each due step once."""

    def __init__(
        self, ctx: AppContext, settings: ClockSettings | None = None, owner: str = ""
    ) -> None:
        self.ctx = ctx
        self.settings = settings or ClockSettings()
        self.owner = owner or f"clock-{uuid.uuid4().hex[:12]}"
        self._stop = asyncio.Event()
        self._digest_seen: dict[
            str, str
        ] = {}  # team -> newest slot known done (saves a query per tick)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Tick every ``interval_seconds`` until ``stop()``; a failing tick is logged and retried."""
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("clock tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.interval_seconds)

    async def tick(self) -> TickReport:
        """Do everything due at ``ctx.clock()`` once."""
        now = self.ctx.clock()
        report = TickReport()
        report.handovers = await self._hand_over_from_away(now)
        seen: set[int] = set()
        for _ in range(self.settings.max_rounds):
            ids = [i for i in await self._due_ids(now) if i not in seen]
            if not ids:
                break
            seen.update(ids)
            report.due += len(ids)
            size = max(1, self.settings.chunk)
            for start in range(0, len(ids), size):
                await self._handle_chunk(ids[start : start + size], now, report)
        if self.settings.digests:
            from bot.digest import run_due_digests

            report.digests = await run_due_digests(
                self.ctx, now, owner=self.owner, seen=self._digest_seen
            )
        if report.steps or report.handovers or report.digests:
            self.ctx.changed.fire()
            self.ctx.outbox_ready.fire()
        return report

    async def _due_ids(self, now: datetime) -> list[int]:
        async with self.ctx.sessions() as session:
            rows = await session.exec(
                select(Inquiry.id)
                .where(col(Inquiry.next_due_at) <= now)
                .order_by(col(Inquiry.next_due_at))
                .limit(self.settings.batch)
            )
            return [i for i in rows.all() if i is not None]

    async def _locked(self, session: AsyncSession, *conditions: Any) -> Inquiry | None:
        stmt = select(Inquiry).where(*conditions).execution_options(populate_existing=True)
        bind = session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return (await session.exec(stmt)).first()

    async def _handle_chunk(self, ids: list[int], now: datetime, report: TickReport) -> None:
        """``ids`` in one transaction; when that fails, each of them in its own."""
        if len(ids) > 1:
            done = TickReport()
            try:
                await self._handle(ids, now, done)
            except Exception as exc:
                log.info(
                    "clock chunk failed (%s); handling its inquiries one by one",
                    type(exc).__name__,
                    extra={"inquiries": len(ids)},
                )
            else:
                _merge(report, done)
                return
        for inquiry_id in ids:
            done = TickReport()
            try:
                await self._handle([inquiry_id], now, done)
            except repo.Conflict:
                log.info(
                    "clock step lost a race; the next tick decides again",
                    extra={"inquiry": inquiry_id},
                )
            except Exception:
                log.exception("clock step failed", extra={"inquiry": inquiry_id})
            else:
                _merge(report, done)

    async def _handle(self, ids: list[int], now: datetime, report: TickReport) -> None:
        """Do the due steps of ``ids`` (those still due and not locked by another process).

        Counts go to ``report`` as they happen; the caller merges it only once
        the transaction committed.
        """
        ctx = self.ctx
        async with transaction(ctx.sessions) as session:
            stmt = (
                select(Inquiry)
                .where(col(Inquiry.id).in_(ids), col(Inquiry.next_due_at) <= now)
                .execution_options(populate_existing=True)
            )
            bind = session.bind
            if bind is not None and bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            position = {inquiry_id: n for n, inquiry_id in enumerate(ids)}
            inquiries = sorted(
                (await session.exec(stmt)).all(), key=lambda i: position.get(i.id or 0, 0)
            )
            if not inquiries:
                return  # other processes have them, or they are no longer due
            conn = await session.connection()
            away = await away_reps(ctx, session)
            work: list[tuple[Inquiry, TeamSettings | None, Plan | None]] = []
            for inquiry in inquiries:
                try:
                    team = ctx.settings.team(inquiry.team)
                except KeyError:
                    work.append((inquiry, None, None))
                    continue
                work.append((inquiry, team, _plan(ctx, team, inquiry, now, away)))
            won = await claim_jobs(
                session,
                {
                    step.key: {"inquiry": inquiry.id, "kind": step.kind}
                    for inquiry, _team, current in work
                    if current is not None
                    for step in current.due
                },
                self.owner,
                now,
            )
            out = _Writes(session)
            for inquiry, known, current in work:
                if known is None or current is None:
                    await _store(conn, inquiry, now, bump=False, values={"next_due_at": None})
                    continue
                team = known
                values: dict[str, Any] = {}
                notes: list[str] = []
                for step in current.due:
                    if step.key not in won:
                        continue  # done before (by us or by another process)
                    late = now - step.due_at > self.settings.late_after
                    _STEPS[step.kind](ctx, out, team, inquiry, step, now, late, values, notes, away)
                    report.steps += 1
                    report.late += int(late)
                    report.kinds[step.kind] = report.kinds.get(step.kind, 0) + 1
                after = _plan(ctx, team, _with(inquiry, values), now, away)
                values["next_due_at"] = after.next_due_at
                updated = await _store(
                    conn, inquiry, now, bump=bool(notes) or "status" in values, values=values
                )
                if notes:
                    await out.flush(conn)  # keeps the outbox rows in the order they were made
                    await queue_card_updates(
                        session, ctx, updated, lane=Lane.BULK, note=" · ".join(notes)
                    )
            await out.flush(conn)

    async def _hand_over_from_away(self, now: datetime) -> int:
        """Open items of reps marked away go to their backup, or back to the pool."""
        async with self.ctx.sessions() as session:
            everyone = await away_reps(self.ctx, session)
            away = sorted(everyone)
            if not away:
                return 0
            ids = (
                await session.exec(
                    select(Inquiry.id).where(
                        col(Inquiry.assignee).in_(away), col(Inquiry.status).in_(_OPEN_VALUES)
                    )
                )
            ).all()
        done = 0
        for inquiry_id in ids:
            if inquiry_id is None:
                continue
            try:
                done += await self._hand_over(inquiry_id, away, everyone, now)
            except repo.Conflict:
                continue
        return done

    async def _hand_over(
        self, inquiry_id: int, away: list[str], everyone: frozenset[str], now: datetime
    ) -> int:
        ctx = self.ctx
        async with transaction(ctx.sessions) as session:
            inquiry = await self._locked(
                session,
                col(Inquiry.id) == inquiry_id,
                col(Inquiry.assignee).in_(away),
                col(Inquiry.status).in_(_OPEN_VALUES),
            )
            if inquiry is None or inquiry.assignee is None:
                return 0
            team = ctx.settings.team(inquiry.team)
            locale = team.locale
            gone = inquiry.assignee
            backup = _stand_in(ctx, gone, everyone)
            if backup != gone and backup in team.rep_ids():
                updated = await _cas(session, inquiry, now, bump=True, assignee=backup)
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
                updated = await _cas(
                    session,
                    inquiry,
                    now,
                    bump=True,
                    status=Status.NEW.value,
                    assignee=None,
                    claim_due_at=claim_due,
                    reply_due_at=None,
                    next_due_at=claim_due,
                    escalation_level=0,
                )
                backup = ""
                note = text(
                    locale, "clock.handed_to_pool", number=inquiry_id, away=ctx.rep_name(gone)
                )
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
        return 1


# -- steps -------------------------------------------------------------------


async def claim_job(
    session: AsyncSession, key: str, owner: str, now: datetime, detail: dict[str, Any] | None = None
) -> bool:
    """Insert the ``JobRun`` row of ``key``; True only for the one transaction that inserted it.

    On PostgreSQL a concurrent inserter of the same key waits for the first
    transaction and then finds the conflict; SQLite serializes writers.
    """
    bind = session.bind
    insert = (
        postgresql.insert
        if bind is not None and bind.dialect.name == "postgresql"
        else sqlite.insert
    )
    stmt = (
        insert(JobRun)
        .values(key=key, owner=owner, started_at=now, finished_at=now, detail=detail or {})
        .on_conflict_do_nothing(index_elements=["key"])
    )
    result = await session.exec(stmt)
    return bool(result.rowcount == 1)


def _insert_for(session: AsyncSession) -> Any:
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


async def claim_jobs(
    session: AsyncSession, jobs: dict[str, dict[str, Any]], owner: str, now: datetime
) -> set[str]:
    """Insert the ``JobRun`` rows of ``jobs`` (key -> detail) in one statement.

    Returns the keys this transaction inserted: only those steps may act. Keys
    go in sorted, so two transactions that meet on several keys wait for each
    other in the same order (no deadlock).
    """
    if not jobs:
        return set()
    stmt = (
        _insert_for(session)(JobRun)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(JobRun.key))
    )
    rows = [
        {"key": key, "owner": owner, "started_at": now, "finished_at": now, "detail": jobs[key]}
        for key in sorted(jobs)
    ]
    conn = await session.connection()
    result = await conn.execute(stmt, rows)
    return set(result.scalars().all())


class _Writes:
    """The Events and outbox rows of a chunk's steps, inserted in bulk in the order they were made."""

    def __init__(self, session: AsyncSession) -> None:
        self.events: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self._outbox_insert = _insert_for(session)(Outbox).on_conflict_do_nothing(
            index_elements=["key"]
        )

    def event(
        self,
        inquiry: Inquiry,
        *,
        at: datetime,
        kind: str,
        before: str,
        after: str,
        data: dict[str, Any],
    ) -> None:
        self.events.append(
            {
                "inquiry_id": inquiry.id,
                "team": inquiry.team,
                "at": at,
                "actor": "system",
                "kind": kind,
                "before": before,
                "after": after,
                "data": data,
            }
        )

    def enqueue(
        self,
        *,
        key: str,
        channel: str,
        kind: str,
        destination: str,
        inquiry_id: int,
        now: datetime,
        payload: dict[str, Any],
    ) -> None:
        """An outbox row like ``store.outbox.enqueue`` makes (a repeated key is a no-op)."""
        self.outbox.append(
            {
                "key": key,
                "lane": Lane.BULK.value,
                "channel": channel,
                "destination": destination,
                "kind": kind,
                "inquiry_id": inquiry_id,
                "payload": payload,
                "state": OutboxState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_owner": "",
                "last_error": "",
                "created_at": now,
            }
        )

    async def flush(self, conn: AsyncConnection) -> None:
        if self.events:
            await conn.execute(insert(Event), self.events)
            self.events = []
        if self.outbox:
            await conn.execute(self._outbox_insert, self.outbox)
            self.outbox = []


def _merge(report: TickReport, done: TickReport) -> None:
    report.steps += done.steps
    report.late += done.late
    for kind, n in done.kinds.items():
        report.kinds[kind] = report.kinds.get(kind, 0) + n


async def _store(
    conn: AsyncConnection, inquiry: Inquiry, now: datetime, *, bump: bool, values: dict[str, Any]
) -> Inquiry:
    """Compare-and-set at the version we read (under our row lock, so nothing can have changed
    it: a mismatch is a bug or a lock we did not get, and fails the chunk); ``bump`` when the
    card must re-render. Returns the inquiry as stored, without re-reading it."""
    assert inquiry.id is not None
    changes = dict(values)
    if bump:
        changes.update(updated_at=now, version=inquiry.version + 1)
    result = await conn.execute(
        update(Inquiry)
        .where(col(Inquiry.id) == inquiry.id, col(Inquiry.version) == inquiry.version)
        .values(**changes)
    )
    if result.rowcount != 1:
        raise repo.Conflict(inquiry.id)
    return _with(inquiry, changes)


async def _cas(
    session: AsyncSession, inquiry: Inquiry, now: datetime, *, bump: bool, **values: Any
) -> Inquiry:
    """Compare-and-set at the version we read; ``bump`` when the card must re-render."""
    assert inquiry.id is not None
    if bump:
        return await repo.change(session, inquiry, now, **values)
    result = await session.exec(
        update(Inquiry)
        .where(col(Inquiry.id) == inquiry.id, col(Inquiry.version) == inquiry.version)
        .values(**values)
    )
    if result.rowcount != 1:
        raise repo.Conflict(inquiry.id)
    return _with(inquiry, values)  # no re-read: nothing else changed under our lock


def _state(inquiry: Inquiry) -> ClockState:
    assert inquiry.id is not None
    return ClockState(
        id=inquiry.id,
        status=inquiry.status,
        assignee=inquiry.assignee,
        priority=inquiry.priority,
        country=inquiry.country,
        claim_due_at=inquiry.claim_due_at,
        reply_due_at=inquiry.reply_due_at,
        first_reply_at=inquiry.first_reply_at,
        snoozed_until=inquiry.snoozed_until,
        follow_up_at=inquiry.follow_up_at,
    )


def _with(inquiry: Inquiry, values: dict[str, Any]) -> Inquiry:
    copy = inquiry.model_copy()
    for name, value in values.items():
        setattr(copy, name, value)
    return copy


def _plan(
    ctx: AppContext, team: TeamSettings, inquiry: Inquiry, now: datetime, away: frozenset[str]
) -> Plan:
    return plan(
        _state(inquiry),
        team,
        now,
        has_leads=bool(_ladder(ctx, team, 1, away)),
        has_managers=bool(_ladder(ctx, team, 2, away)),
    )


def _late_suffix(team: TeamSettings, step: Step, late: bool) -> str:
    return (" " + text(team.locale, "clock.late", due=_local(team, step.due_at))) if late else ""


def _post_group(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    message: str,
    reps: list[RepSettings],
) -> None:
    """A message in the card's thread on every platform, ``{mentions}`` filled in per platform."""
    assert inquiry.id is not None
    for channel, dest in _targets(ctx, team):
        mentions = " ".join(mention(channel, r) for r in reps)
        out.enqueue(
            key=f"thread.post:{channel}:{dest}:{step.key}",
            channel=channel,
            kind="thread.post",
            destination=dest,
            inquiry_id=inquiry.id,
            now=now,
            payload={
                "text": message.replace("{mentions}", mentions).strip(),
                "mentions": [platform_user(channel, r) for r in reps],
            },
        )


def _direct(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    message: str,
    rep_ids: list[str],
    *,
    card: str = "",
) -> list[str]:
    """A DM to each rep on each platform the team uses; returns who was reachable somewhere."""
    assert inquiry.id is not None
    reached: list[str] = []
    platforms = list(dict.fromkeys(channel for channel, _dest in _targets(ctx, team)))
    for rep_id in rep_ids:
        rep = ctx.settings.rep(rep_id)
        if rep is None:
            continue
        for channel in platforms:
            user = platform_user(channel, rep)
            if not user:
                continue
            out.enqueue(
                key=f"dm:{channel}:{user}:{step.key}",
                channel=channel,
                kind="dm",
                destination=user,
                inquiry_id=inquiry.id,
                now=now,
                payload={
                    "text": message,
                    "locale": team.locale,
                    "rep": rep_id,
                    "card": card,
                    "level": step.number,
                },
            )
            if rep_id not in reached:
                reached.append(rep_id)
    return reached


def _event(
    out: _Writes,
    inquiry: Inquiry,
    now: datetime,
    kind: str,
    step: Step,
    late: bool,
    **data: Any,
) -> None:
    out.event(
        inquiry,
        at=now,
        kind=kind,
        before=str(data.pop("before", "")),
        after=str(data.pop("after", "")),
        data={"step": step.key, "due_at": step.due_at.isoformat(), "late": late, **data},
    )


def _nudge(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    reps = on_duty(ctx, team, away)
    overdue = duration_words(
        sla_elapsed(team, inquiry.claim_due_at, now).total_seconds() if inquiry.claim_due_at else 0,
        team.locale,
    )
    message = text(
        team.locale,
        "clock.nudge",
        number=inquiry.id,
        subject=inquiry.subject,
        overdue=overdue,
        mentions="{mentions}",
    )
    _post_group(ctx, out, team, inquiry, step, now, message + _late_suffix(team, step, late), reps)
    _event(
        out,
        inquiry,
        now,
        "nudged",
        step,
        late,
        number=step.number,
        mentions=[r.id for r in reps],
    )


def _escalate(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    people = _ladder(ctx, team, step.number, away)
    if step.kind == "escalate":
        due = inquiry.claim_due_at or step.due_at
        message = text(
            team.locale,
            "clock.escalate_claim",
            number=inquiry.id,
            subject=inquiry.subject,
            due=_local(team, due),
        )
        phase = "claim"
    else:
        due = inquiry.reply_due_at or step.due_at
        message = text(
            team.locale,
            "clock.escalate_reply",
            number=inquiry.id,
            subject=inquiry.subject,
            owner=ctx.rep_name(inquiry.assignee),
            due=_local(team, due),
        )
        phase = "reply"
    reached = _direct(
        ctx,
        out,
        team,
        inquiry,
        step,
        now,
        message + _late_suffix(team, step, late),
        people,
        card="escalation",
    )
    names = ", ".join(ctx.rep_name(p) for p in people)
    _event(
        out,
        inquiry,
        now,
        "escalated",
        step,
        late,
        before=inquiry.escalation_level,
        after=step.number,
        level=step.number,
        phase=phase,
        to=people,
        names=names,
        reached=reached,
    )
    values["escalation_level"] = step.number
    notes.append(text(team.locale, "clock.escalated_to", names=names))


def _remind_owner(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    if inquiry.assignee is None:
        return
    owner = _stand_in(ctx, inquiry.assignee, away)
    due = inquiry.reply_due_at or step.due_at
    message = text(
        team.locale,
        "clock.remind_owner",
        number=inquiry.id,
        subject=inquiry.subject,
        due=_local(team, due),
    )
    reached = _direct(
        ctx,
        out,
        team,
        inquiry,
        step,
        now,
        message + _late_suffix(team, step, late),
        [owner],
        card="reminder",
    )
    _event(out, inquiry, now, "reminded", step, late, to=[owner], reached=reached)


def _return_to_pool(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    owner = inquiry.assignee or ""
    claim_due = due_after(
        team, now, sla_for(team, inquiry.priority).claim_within, priority=inquiry.priority
    )
    values.update(
        status=Status.NEW.value,
        assignee=None,
        claim_due_at=claim_due,
        reply_due_at=None,
        escalation_level=0,
    )
    _event(
        out,
        inquiry,
        now,
        "returned_to_pool",
        step,
        late,
        before=owner,
        after="",
        status_before=inquiry.status,
    )
    notes.append(text(team.locale, "clock.returned", number=inquiry.id, owner=ctx.rep_name(owner)))


def _follow_up(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    message = text(
        team.locale, "clock.follow_up", number=inquiry.id, subject=inquiry.subject, mentions=""
    ).strip()
    message += _late_suffix(team, step, late)
    if inquiry.assignee:
        to = [_stand_in(ctx, inquiry.assignee, away)]
        reached = _direct(ctx, out, team, inquiry, step, now, message, to, card="reminder")
    else:
        reps = on_duty(ctx, team, away)
        to = [r.id for r in reps]
        _post_group(ctx, out, team, inquiry, step, now, message + " {mentions}", reps)
        reached = to
    values["follow_up_at"] = None
    _event(out, inquiry, now, "follow_up_due", step, late, to=to, reached=reached)


def _wake(
    ctx: AppContext,
    out: _Writes,
    team: TeamSettings,
    inquiry: Inquiry,
    step: Step,
    now: datetime,
    late: bool,
    values: dict[str, Any],
    notes: list[str],
    away: frozenset[str],
) -> None:
    values["snoozed_until"] = None
    sla = sla_for(team, inquiry.priority)
    if (
        inquiry.status == Status.NEW.value
        and inquiry.claim_due_at is not None
        and inquiry.claim_due_at <= now
    ):
        values["claim_due_at"] = due_after(team, now, sla.claim_within, priority=inquiry.priority)
    if (
        inquiry.status == Status.CLAIMED.value
        and inquiry.first_reply_at is None
        and inquiry.reply_due_at is not None
        and inquiry.reply_due_at <= now
    ):
        values["reply_due_at"] = due_after(
            team, now, sla.first_reply_within, priority=inquiry.priority
        )
    who = (
        [ctx.settings.rep(_stand_in(ctx, inquiry.assignee, away))]
        if inquiry.assignee
        else list(on_duty(ctx, team, away))
    )
    reps = [r for r in who if r is not None]
    message = text(team.locale, "clock.woke", number=inquiry.id, mentions="{mentions}")
    _post_group(ctx, out, team, inquiry, step, now, message + _late_suffix(team, step, late), reps)
    _event(out, inquiry, now, "snooze_ended", step, late, to=[r.id for r in reps])
    notes.append(text(team.locale, "clock.woke", number=inquiry.id, mentions="").strip())


_STEPS = {
    "nudge": _nudge,
    "escalate": _escalate,
    "escalate_reply": _escalate,
    "remind_owner": _remind_owner,
    "return_to_pool": _return_to_pool,
    "follow_up": _follow_up,
    "wake": _wake,
}


# -- use cases and delivery helpers -----------------------------------------


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
    when = _local(team, wanted)
    await queue_card_updates(
        session,
        ctx,
        updated,
        lane=Lane.INTERACTIVE,
        note=text(team.locale, "clock.follow_up_set", number=inquiry.id, when=when),
    )
    return updated, when


async def direct_card(ctx: AppContext, row: Outbox) -> Card | None:
    """The card that goes with a clock DM (escalations carry Claim / Reassign), as of now."""
    if row.payload.get("card") != "escalation" or row.inquiry_id is None:
        return None
    async with ctx.sessions() as session:
        try:
            inquiry = await repo.get_inquiry(session, row.inquiry_id)
        except repo.NotFound:
            return None
        contact = await session.get(Contact, inquiry.contact_id)
        away = await away_reps(ctx, session)
    try:
        team = ctx.settings.team(inquiry.team)
    except KeyError:
        return None
    members = tuple(Option(ctx.rep_name(r.id), r.id) for r in on_duty(ctx, team, away))
    return build_escalation_card(
        inquiry_view(ctx, inquiry, contact),
        now=ctx.clock(),
        locale=team.locale,
        headline=str(row.payload.get("text", "")),
        members=members,
    )
