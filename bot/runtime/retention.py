"""The retention job: once an hour, prune old bookkeeping rows (``store.retention``).

Each hour is claimed as ``JobRun("retention:<UTC hour>")`` first, in its own
transaction, so of several processes on one PostgreSQL only one prunes in a
given hour (two would be harmless: every delete is idempotent). Rows go in
batches of ``store.retention.BATCH``, each batch its own short transaction
(bulk priority on SQLite), so interactive writers are never held up for long.

Cutoffs come from ``[store]``: ``keep_done_outbox_days``, ``keep_dedupe_days``
(delivery dedupe keys, clock step keys, worker heartbeats) and
``keep_webhook_keys_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.context import AppContext
from store import retention
from store.engine import transaction
from store.job_runs import claim_job

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    """Rows deleted by one run, per kind (``ran`` False: another process had this hour)."""

    ran: bool = False
    outbox: int = 0
    dedupe: int = 0
    clock: int = 0
    webhook_keys: int = 0
    heartbeats: int = 0


def hour_key(now: datetime) -> str:
    """The ``job_run`` key of the retention run of ``now``'s UTC hour."""
    return "retention:" + now.strftime("%Y-%m-%dT%H")


class Retention:
    """Runs :meth:`run_once` every ``interval_seconds`` until stopped."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        interval_seconds: float = 3600.0,
        batch: int = retention.BATCH,
        owner: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.interval_seconds = interval_seconds
        self.batch = batch
        self.owner = owner or f"retention-{uuid.uuid4().hex[:12]}"
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("retention run failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_seconds)

    async def run_once(self) -> RetentionReport:
        """Prune once unless this hour was claimed already (by us or another process)."""
        ctx = self.ctx
        now = ctx.clock()
        report = RetentionReport()
        async with transaction(ctx.sessions) as session:
            if not await claim_job(session, hour_key(now), self.owner, now):
                return report
        report.ran = True
        store = ctx.settings.store
        dedupe_before = now - timedelta(days=store.keep_dedupe_days)
        report.outbox = await self._batches(
            lambda s: retention.delete_done_outbox(
                s, now - timedelta(days=store.keep_done_outbox_days), self.batch
            )
        )
        report.dedupe = await self._batches(
            lambda s: retention.delete_dedupe_runs(s, dedupe_before, self.batch)
        )
        report.webhook_keys = await self._batches(
            lambda s: retention.delete_webhook_keys(
                s, now - timedelta(days=store.keep_webhook_keys_days), self.batch
            )
        )
        report.heartbeats = await self._batches(
            lambda s: retention.delete_heartbeats(s, dedupe_before, self.batch)
        )
        after = ""
        while True:
            async with transaction(ctx.sessions, bulk=True) as session:
                deleted, after = await retention.delete_clock_runs(
                    session, dedupe_before, after, self.batch
                )
            report.clock += deleted
            if not after:
                break
        log.info(
            "retention run",
            extra={
                "outbox": report.outbox,
                "dedupe": report.dedupe,
                "clock": report.clock,
                "webhook_keys": report.webhook_keys,
                "heartbeats": report.heartbeats,
            },
        )
        return report

    async def _batches(self, step: Callable[..., Awaitable[int]]) -> int:
        total = 0
        while True:
            async with transaction(self.ctx.sessions, bulk=True) as session:
                deleted = await step(session)
            total += deleted
            if deleted < self.batch:
                return total
