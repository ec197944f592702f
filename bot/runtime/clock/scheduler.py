"""The scheduler: the loop that ticks, and a tick that does every due step once, chunk by chunk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import col, select

from bot.context import AppContext
from bot.runtime.clock.context import StepContext, plan_for
from bot.runtime.clock.hand_over import hand_over_from_away
from bot.runtime.clock.people import rungs
from bot.runtime.clock.steps import STEPS
from bot.runtime.clock.writes import Writes, with_values
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.presence import away_reps
from bot.usecases.sla import Plan
from config.schema import TeamSettings
from store import inquiries as repo
from store.engine import transaction
from store.job_runs import claim_jobs
from store.models import Inquiry, Lane

log = logging.getLogger(__name__)


@dataclass
class ClockSettings:
    """Tuning of the scheduler (tests call ``tick`` themselves and never wait for the loop)."""

    interval_seconds: float = 15.0
    batch: int = 500
    chunk: int = 0  # due inquiries handled in one transaction; 0: the store's default
    max_rounds: int = 20  # batches per tick at most, so one tick always ends
    parallel: int = 0  # chunks in flight at once; 0: the store's default (PARALLEL_CHUNKS)
    late_after: timedelta = timedelta(minutes=5)
    digests: bool = True


#: Due inquiries per transaction when ``ClockSettings.chunk`` is 0. SQLite has one write
#: lock for the whole file: a chunk holds up every writer that comes meanwhile (clicks go
#: first between chunks, which queue as bulk writers), so a chunk holds it about as long as
#: a webhook batch may (``IntakeWriter.max_hold``, 40 ms): 100 nudges take ~35 ms. Each
#: chunk also costs ~4 ms whatever its size (1,000 due: 1.48 s in chunks of 10, 0.65 s of
#: 50, 0.51 s of 250; ``bench/bench_clock.py --chunk``). PostgreSQL locks the chunk's rows
#: only (``FOR UPDATE SKIP LOCKED``): longer chunks cost nobody else anything and save round
#: trips (1,000 due: 0.56 s with 50, 0.39 s with 250).
DEFAULT_CHUNK = {"sqlite": 100, "postgresql": 250}

#: Chunks in flight at once when ``ClockSettings.parallel`` is 0. On PostgreSQL a chunk's
#: rows are its own (``FOR UPDATE SKIP LOCKED``; its job, event and outbox keys name its
#: inquiries), so while the server writes one chunk this process plans the next: the
#: server's half of a tick (about half, on the bench) no longer waits for ours. SQLite has
#: one writer: one chunk at a time.
PARALLEL_CHUNKS = {"sqlite": 1, "postgresql": 2}

#: The chunk's rows, still due (on PostgreSQL locked, skipping rows another process holds).
#: Built once: a statement built per chunk cost more than the rows it read (its
#: construction and cache key, ~1 ms of a 1-inquiry chunk).
_DUE_ROWS_ANY = (
    select(Inquiry)
    .where(
        col(Inquiry.id).in_(bindparam("ids", expanding=True)),
        col(Inquiry.next_due_at) <= bindparam("now"),
    )
    .execution_options(populate_existing=True)
)
_DUE_ROWS = {
    "sqlite": _DUE_ROWS_ANY,
    "postgresql": _DUE_ROWS_ANY.with_for_update(skip_locked=True),
}


@dataclass
class TickReport:
    """What one tick did (for logs, metrics, tests and the benchmark)."""

    due: int = 0
    steps: int = 0
    late: int = 0
    handovers: int = 0
    digests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def merge(self, done: TickReport) -> None:
        """Add the step counts of ``done`` (a chunk that committed)."""
        self.steps += done.steps
        self.late += done.late
        for kind, n in done.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n


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
        # One look at who is away for the whole tick, not one per chunk: a flag set during
        # the tick counts from the next.
        async with transaction(self.ctx.readers) as session:
            away = await away_reps(self.ctx, session)
        report.handovers = await hand_over_from_away(self.ctx, now, away)
        seen: set[int] = set()
        for _ in range(self.settings.max_rounds):
            ids = [i for i in await self._due_ids(now) if i not in seen]
            if not ids:
                break
            seen.update(ids)
            report.due += len(ids)
            size = max(1, self.settings.chunk or DEFAULT_CHUNK.get(self._dialect(), 50))
            chunks = [ids[start : start + size] for start in range(0, len(ids), size)]
            await self._handle_chunks(chunks, now, away, report)
        if self.settings.digests:
            from bot.usecases.digest import run_due_digests

            report.digests = await run_due_digests(
                self.ctx, now, owner=self.owner, seen=self._digest_seen
            )
        if report.steps or report.handovers or report.digests:
            self.ctx.changed.fire()
            self.ctx.outbox_ready.fire()
        return report

    def _dialect(self) -> str:
        return str(self.ctx.engine.dialect.name)

    async def _due_ids(self, now: datetime) -> list[int]:
        async with transaction(self.ctx.readers) as session:
            rows = await session.exec(
                select(Inquiry.id)
                .where(col(Inquiry.next_due_at) <= now)
                .order_by(col(Inquiry.next_due_at))
                .limit(self.settings.batch)
            )
            return [i for i in rows.all() if i is not None]

    async def _handle_chunks(
        self, chunks: list[list[int]], now: datetime, away: frozenset[str], report: TickReport
    ) -> None:
        """Each of ``chunks``, up to ``parallel`` of them at once (each in its transaction)."""
        parallel = self.settings.parallel or PARALLEL_CHUNKS.get(self._dialect(), 1)
        if parallel <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                await self._handle_chunk(chunk, now, away, report)
            return
        gate = asyncio.Semaphore(parallel)

        async def handle(chunk: list[int]) -> None:
            async with gate:
                await self._handle_chunk(chunk, now, away, report)

        await asyncio.gather(*(handle(chunk) for chunk in chunks))

    async def _handle_chunk(
        self, ids: list[int], now: datetime, away: frozenset[str], report: TickReport
    ) -> None:
        """``ids`` in one transaction; when that fails, each of them in its own."""
        if len(ids) > 1:
            done = TickReport()
            try:
                await self._handle(ids, now, away, done)
            except Exception as exc:
                log.info(
                    "clock chunk failed (%s); handling its inquiries one by one",
                    type(exc).__name__,
                    extra={"inquiries": len(ids)},
                )
            else:
                report.merge(done)
                return
        for inquiry_id in ids:
            done = TickReport()
            try:
                await self._handle([inquiry_id], now, away, done)
            except repo.Conflict:
                log.info(
                    "clock step lost a race; the next tick decides again",
                    extra={"inquiry": inquiry_id},
                )
            except Exception:
                log.exception("clock step failed", extra={"inquiry": inquiry_id})
            else:
                report.merge(done)

    async def _handle(
        self, ids: list[int], now: datetime, away: frozenset[str], report: TickReport
    ) -> None:
        """Do the due steps of ``ids`` (those still due and not locked by another process).

        Counts go to ``report`` as they happen; the caller merges it only once
        the transaction committed.
        """
        ctx = self.ctx
        async with transaction(ctx.sessions, bulk=True) as session:
            stmt = _DUE_ROWS[self._dialect()]
            position = {inquiry_id: n for n, inquiry_id in enumerate(ids)}
            inquiries = sorted(
                (await session.exec(stmt, params={"ids": ids, "now": now})).all(),
                key=lambda i: position.get(i.id or 0, 0),
            )
            if not inquiries:
                return  # other processes have them, or they are no longer due
            conn = await session.connection()
            levels: dict[str, int] = {}  # team -> rungs with someone (the same all chunk)
            work: list[tuple[Inquiry, TeamSettings | None, Plan | None]] = []
            for inquiry in inquiries:
                try:
                    team = ctx.settings.team(inquiry.team)
                except KeyError:
                    work.append((inquiry, None, None))
                    continue
                if team.name not in levels:
                    levels[team.name] = len(rungs(ctx, team, away))
                work.append(
                    (inquiry, team, plan_for(ctx, team, inquiry, now, away, levels[team.name]))
                )
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
            out = Writes()
            memo: dict[tuple[str, ...], Any] = {}  # StepContext.memo, shared by the chunk
            for inquiry, known, current in work:
                if known is None or current is None:
                    out.store_values(inquiry, now, bump=False, values={"next_due_at": None})
                    continue
                team = known
                values: dict[str, Any] = {}
                notes: list[str] = []
                for step in current.due:
                    if step.key not in won:
                        continue  # done before (by us or by another process)
                    late = now - step.due_at > self.settings.late_after
                    STEPS[step.kind](
                        StepContext(
                            ctx, out, team, inquiry, step, now, late, away, values, notes, memo
                        )
                    )
                    report.steps += 1
                    report.late += int(late)
                    report.kinds[step.kind] = report.kinds.get(step.kind, 0) + 1
                if values:
                    after = plan_for(
                        ctx, team, inquiry, now, away, levels[team.name], changed=values
                    )
                    values["next_due_at"] = after.next_due_at
                else:
                    # The plan is a pure function of the columns it reads: with none changed,
                    # planning again gives the same next step (the due ones are done now).
                    values["next_due_at"] = current.next_due_at
                stored = out.store_values(
                    inquiry, now, bump=bool(notes) or "status" in values, values=values
                )
                if notes:
                    await out.flush(conn)  # keeps the outbox rows in the order they were made
                    await queue_card_updates(
                        session,
                        ctx,
                        with_values(inquiry, stored),
                        lane=Lane.BULK,
                        note=" · ".join(notes),
                    )
            await out.flush(conn)
