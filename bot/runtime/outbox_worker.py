"""The outbox worker: delivers side effects with retries, backoff, pacing and lanes.

Two lanes run as independent loops with their own leases and concurrency:
**interactive** (a click's card updates, replies) and **bulk** (new cards,
digests, nudges). A burst of thousands of bulk rows therefore never delays a
click: the interactive loop leases and delivers on its own (the lesson from
Grafana OnCall's single FIFO queue in DESIGN.md).

Within a lane, rows for one destination (a channel, a mailbox) are delivered
one after another in enqueue order, paced by the channel's ``Pacing`` (Slack
~1 post/s per channel, DingTalk/WeCom robots 20/min), and a 429's
``Retry-After`` pauses that destination only. Rows are leased (compare-and-set
on the owner and ``leased_until``; ``SKIP LOCKED`` on PostgreSQL), a few per
destination at a time, so a crashed process's rows are delivered by whoever
runs next, and never by two live processes at once. While ``run`` works, a
heartbeat every ``heartbeat_seconds`` records the worker as alive and renews
its leases; a worker not seen for ``dead_after_seconds`` has its leases taken
back by the others (``store.outbox.lease(dead_before=...)``).

Delivery in general is at least once: a crash after the platform accepted a
send but before ``complete`` commits repeats that send. Where that would show,
the repeat is recognised instead: a **card post** is posted exactly once per
inquiry and destination, across crashes and ambiguous timeouts, because the
row's ``attempted_at`` is committed before the platform call and a row that has
it first asks the platform for its own earlier post (``find_posted``, keyed by
the outbox key) — proven for Slack by ``tests/test_card_post_once.py``
(SIGKILL mid-post, and 30 % faults including accept-then-fail). Emails carry a
fixed Message-ID; card updates re-render the current state (a repeat is
harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, update

from bot.context import AppContext
from bot.metrics import failure_label
from bot.runtime.deliveries import RetrySoon, deliver, mark_email_failed
from connectors.channels import DeliveryError
from store import outbox
from store.engine import transaction
from store.models import Lane, Outbox

log = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    """Tuning of the worker (defaults suit production; tests shrink the times)."""

    lease_seconds: float = 30.0  # renewed by the heartbeat while the worker runs
    batch: int = 50
    per_destination: int = 5  # rows of one destination leased at a time
    heartbeat_seconds: float = 5.0
    dead_after_seconds: float = 20.0  # leases of a worker not seen for this long are free
    hold_seconds: float = 90.0  # longest in-place retry of a row (with heartbeats running)
    poll_seconds: float = 1.0
    max_attempts: int = 12
    base_backoff: float = 2.0
    max_backoff: float = 900.0
    bulk_email_interval: float = 0.0


@dataclass
class _LaneState:
    busy: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class OutboxWorker:
    """Runs both lanes until stopped; ``drain`` delivers what is due now (for tests and CLI)."""

    def __init__(
        self, ctx: AppContext, settings: WorkerSettings | None = None, owner: str = ""
    ) -> None:
        self.ctx = ctx
        self.settings = settings or WorkerSettings()
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self._lanes = {lane: _LaneState() for lane in Lane}
        self._next_send: dict[str, float] = defaultdict(float)  # destination key -> loop time
        self._stop = asyncio.Event()
        # One lease at a time per lane in this process, held until the leased rows' tasks
        # are registered: ``drain`` (and a second loop) then never sees "nothing due, no
        # task" while a lease is half done, nor leases a destination already being leased.
        self._lease_locks = {lane: asyncio.Lock() for lane in Lane}
        self._beating = False

    def _dest_key(self, row: Outbox) -> str:
        return f"{row.channel}:{row.destination}"

    def _pace_key(self, row: Outbox) -> str:
        # New cards and everything else (updates, notes) keep separate schedules: a click's
        # card update never waits for the bulk lane's next paced post slot (Slack limits
        # chat.postMessage per channel, chat.update separately).
        return f"{self._dest_key(row)}:{'post' if row.kind == 'card.post' else 'other'}"

    async def run(self) -> None:
        """Both lanes and the heartbeat until ``stop()``."""
        await self.beat()
        beat = asyncio.create_task(self._heartbeat_loop())
        try:
            await asyncio.gather(self._lane_loop(Lane.INTERACTIVE), self._lane_loop(Lane.BULK))
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            self._beating = False
            try:
                async with transaction(self.ctx.sessions) as session:
                    await outbox.forget_worker(
                        session,
                        self.owner,
                        stale_before=self.ctx.clock() - timedelta(days=1),
                    )
            except Exception:
                log.exception("could not remove the worker heartbeat", extra={"owner": self.owner})

    async def beat(self) -> None:
        """Record this worker as alive and renew its leases (one heartbeat)."""
        async with transaction(self.ctx.sessions) as session:
            await outbox.heartbeat(
                session,
                owner=self.owner,
                now=self.ctx.clock(),
                lease_for=timedelta(seconds=self.settings.lease_seconds),
            )
        self._beating = True

    async def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.heartbeat_seconds)
            if self._stop.is_set():
                return
            try:
                await self.beat()
            except Exception:
                log.exception("outbox heartbeat failed", extra={"owner": self.owner})

    def _dead_before(self) -> datetime:
        return self.ctx.clock() - timedelta(seconds=self.settings.dead_after_seconds)

    def stop(self) -> None:
        self._stop.set()

    async def _lane_loop(self, lane: Lane) -> None:
        wake = self.ctx.outbox_ready.subscribe()
        try:
            while not self._stop.is_set():
                wake.clear()
                try:
                    await self._lease_and_start(lane)
                except Exception:
                    log.exception("outbox lease failed", extra={"lane": lane.value})
                waiter = asyncio.ensure_future(wake.wait())
                stopper = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait(
                    {waiter, stopper},
                    timeout=self.settings.poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                stopper.cancel()
        finally:
            self.ctx.outbox_ready.unsubscribe(wake)
            state = self._lanes[lane]
            if state.tasks:
                await asyncio.gather(*state.tasks, return_exceptions=True)

    async def _lease_and_start(self, lane: Lane) -> int:
        async with self._lease_locks[lane]:
            return await self._lease_and_start_locked(lane)

    async def _lease_and_start_locked(self, lane: Lane) -> int:
        state = self._lanes[lane]
        now = self.ctx.clock()
        dead_before = self._dead_before()
        async with transaction(self.ctx.readers) as session:
            if not await outbox.has_due(session, lane=lane, now=now, dead_before=dead_before):
                return 0
        async with transaction(self.ctx.sessions) as session:
            rows = await outbox.lease(
                session,
                lane=lane,
                owner=self.owner,
                now=now,
                lease_for=timedelta(seconds=self.settings.lease_seconds),
                limit=self.settings.batch,
                skip_destinations=sorted({key.partition(":")[2] for key in state.busy}),
                fifo=lane == Lane.BULK,  # new cards appear in a channel in the order they came
                per_destination=self.settings.per_destination,
                dead_before=dead_before,
            )
        groups: dict[str, list[Outbox]] = defaultdict(list)
        for row in rows:
            groups[self._dest_key(row)].append(row)
        for key, group in groups.items():
            state.busy.add(key)
            task = asyncio.create_task(self._run_group(lane, key, group))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        return len(rows)

    async def _run_group(self, lane: Lane, key: str, rows: list[Outbox]) -> None:
        # A retryable failure is retried here, in place, while the rows behind it wait:
        # handing it back to the table would let later rows of the destination overtake it.
        # Without heartbeats (``drain``) the lease is not renewed: hold well within it.
        hold = self.settings.hold_seconds if self._beating else self.settings.lease_seconds * 0.75
        hold_until = asyncio.get_running_loop().time() + hold
        try:
            for index, row in enumerate(rows):
                while True:
                    if self._stop.is_set():
                        await self._release(rows[index:])
                        return
                    await self._pace(row)
                    if not await self._deliver_one(lane, row, hold_until=hold_until):
                        break
        finally:
            self._lanes[lane].busy.discard(key)
            self.ctx.outbox_ready.fire()

    async def _pace(self, row: Outbox) -> None:
        channel = self.ctx.channels.get(row.channel)
        interval = 0.0
        if channel is not None:
            interval = (
                channel.pacing.post_interval
                if row.kind == "card.post"
                else channel.pacing.update_interval
            )
        elif row.channel == "smtp":
            interval = self.settings.bulk_email_interval
        loop = asyncio.get_running_loop()
        key = self._pace_key(row)
        wait = self._next_send[key] - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_send[key] = max(self._next_send[key], loop.time()) + interval

    async def _release(self, rows: list[Outbox]) -> None:
        async with transaction(self.ctx.sessions) as session:
            for row in rows:
                assert row.id is not None
                await outbox.retry_later(
                    session, row.id, self.owner, error="released at shutdown", at=self.ctx.clock()
                )

    async def _deliver_waiting_for_post(self, row: Outbox) -> None:
        """Deliver; when the card's post is in flight right now, wait for it briefly in place
        (a few hundred ms) instead of rescheduling: the update or thread note then follows
        the post at once rather than a full retry interval later."""
        for _ in range(20):
            try:
                await deliver(self.ctx, row)
                return
            except RetrySoon as soon:
                if not soon.in_flight:
                    raise
                await asyncio.sleep(0.1)
        await deliver(self.ctx, row)

    async def _deliver_one(self, lane: Lane, row: Outbox, *, hold_until: float = 0.0) -> bool:
        """Deliver ``row``; True: it failed retryably and is to be tried again in place."""
        assert row.id is not None
        metrics = self.ctx.metrics
        try:
            await self._deliver_waiting_for_post(row)
        except RetrySoon as soon:
            async with transaction(self.ctx.sessions) as session:
                await outbox.retry_later(
                    session,
                    row.id,
                    self.owner,
                    error=outbox.WAITING_FOR_POST,
                    at=self.ctx.clock() + timedelta(seconds=soon.seconds),
                )
            return False
        except DeliveryError as exc:
            if await self._hold(row, exc, hold_until):
                return True
            await self._failed(row, str(exc), retry_after=exc.retry_after, permanent=exc.permanent)
            return False
        except Exception as exc:  # a bug or an unexpected library error: retry, loudly
            log.exception("outbox delivery crashed", extra={"outbox": row.id, "kind": row.kind})
            await self._failed(
                row, f"{type(exc).__name__}: {exc}", retry_after=None, permanent=False
            )
            return False
        now = self.ctx.clock()
        async with transaction(self.ctx.sessions) as session:
            woken = 0
            done = await outbox.complete(session, row.id, self.owner, now)
            if done and row.kind == "card.post":
                woken = await outbox.wake_waiting_for_post(session, row, now)
        if woken:
            self.ctx.outbox_ready.fire()
        metrics.deliveries.labels(row.channel, row.kind, "ok").inc()
        metrics.delivery_seconds.labels(lane.value).observe(
            max(0.0, (now - row.created_at).total_seconds())
        )
        return False

    async def _hold(self, row: Outbox, exc: DeliveryError, hold_until: float) -> bool:
        """Retry ``row`` in place (keeping the destination's order) if the lease allows it.

        A rate limit (``retry_after``) is not the row's fault and does not use up attempts.
        """
        if exc.permanent or self._stop.is_set() or not hold_until:
            return False
        if exc.retry_after is None and row.attempts >= self.settings.max_attempts:
            return False
        if exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = min(
                self.settings.max_backoff,
                self.settings.base_backoff * 2 ** max(0, row.attempts - 1),
            ) * random.uniform(0.8, 1.2)
        loop = asyncio.get_running_loop()
        if loop.time() + delay > hold_until:
            return False
        key = self._pace_key(row)
        self._next_send[key] = max(self._next_send[key], loop.time() + delay)
        assert row.id is not None
        row.attempts += 1
        async with transaction(self.ctx.sessions) as session:  # visible to operators, counted
            await session.exec(
                update(Outbox)
                .where(col(Outbox.id) == row.id, col(Outbox.lease_owner) == self.owner)
                .values(attempts=row.attempts, last_error=str(exc)[:2000])
            )
        self.ctx.metrics.deliveries.labels(row.channel, row.kind, "retry").inc()
        self.ctx.metrics.delivery_failures.labels(row.channel, row.kind, "retry").inc()
        log.warning(
            "outbox delivery failed; retrying in place",
            extra={
                "outbox": row.id,
                "kind": row.kind,
                "attempt": row.attempts,
                "delay": delay,
                "error": str(exc)[:300],
            },
        )
        return True

    async def _failed(
        self, row: Outbox, error: str, *, retry_after: float | None, permanent: bool
    ) -> None:
        assert row.id is not None
        now = self.ctx.clock()
        # A rate limit is not the row's fault: it never uses up the row's attempts.
        dead = permanent or (retry_after is None and row.attempts >= self.settings.max_attempts)
        if retry_after is not None:
            delay = retry_after
            loop = asyncio.get_running_loop()
            key = self._pace_key(row)
            self._next_send[key] = max(self._next_send[key], loop.time() + retry_after)
        else:
            delay = min(
                self.settings.max_backoff,
                self.settings.base_backoff * 2 ** max(0, row.attempts - 1),
            )
            delay *= random.uniform(0.8, 1.2)
        async with transaction(self.ctx.sessions) as session:
            await outbox.retry_later(
                session,
                row.id,
                self.owner,
                error=error,
                at=now + timedelta(seconds=delay),
                dead=dead,
            )
        self.ctx.metrics.deliveries.labels(row.channel, row.kind, "dead" if dead else "retry").inc()
        failure = failure_label(permanent=permanent, dead=dead)
        self.ctx.metrics.delivery_failures.labels(row.channel, row.kind, failure).inc()
        log.warning(
            "outbox delivery failed",
            extra={
                "outbox": row.id,
                "kind": row.kind,
                "attempt": row.attempts,
                "dead": dead,
                "error": error[:300],
            },
        )
        if dead:
            await mark_email_failed(self.ctx, row, error)

    async def drain(self, *, max_seconds: float = 10.0) -> None:
        """Deliver everything due now (both lanes) and wait for it; for tests and one-shot CLI runs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while loop.time() < deadline:
            started = 0
            for lane in Lane:
                started += await self._lease_and_start(lane)
            for lock in self._lease_locks.values():
                async with lock:  # a lease the lane loops have half done registers its tasks
                    pass
            pending = [t for state in self._lanes.values() for t in state.tasks]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            elif not started:
                return
        raise TimeoutError("outbox did not drain in time")
