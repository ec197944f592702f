"""Retention of bookkeeping rows: delete old ``job_run``, done ``outbox``, ``webhook_key`` and
``worker_heartbeat`` rows in bounded batches.

Each function deletes at most ``limit`` rows in one statement of the form
``DELETE FROM t WHERE ctid IN (SELECT ctid ... LIMIT n)`` (PostgreSQL) or
``... WHERE rowid IN (SELECT rowid ... LIMIT n)`` (SQLite) and returns how many
went; the caller commits each batch in its own short transaction and repeats
until a batch comes back short.

What is never deleted here: pending or dead outbox rows (work, or evidence of
failed work), inquiries, messages and events (data, not bookkeeping), digest
``job_run`` keys (one per team and day; the digest finds its last day by them)
and any ``job_run`` key of a kind this module does not know.

Clock step keys (``{kind}:{inquiry}:{epoch}...``, see ``bot.usecases.sla``) are
special: a step is planned as due from the inquiry's current deadlines alone,
and its ``job_run`` key is the only record that it was done. So an old key is
deleted only when none of the inquiry's deadlines (``claim_due_at``,
``reply_due_at``, ``follow_up_at``, ``snoozed_until``) still has that key's
epoch: such a key can never be planned again, however old it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, and_, delete, exists, literal_column, not_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Inquiry, JobRun, Outbox, OutboxState, WebhookKey, WorkerHeartbeat

BATCH = 1000

#: ``job_run`` keys of deliveries (card clicks, platform redeliveries) and of this job.
DEDUPE_PREFIXES = ("action:", "retention:")
#: ``job_run`` keys of the clock's steps: ``{kind}:{inquiry id}:{epoch}[:...]``.
CLOCK_PREFIXES = ("wake:", "remind:", "escalate:", "pool:", "follow_up:", "nudge:")


def _row_id(session: AsyncSession) -> Any:
    """The physical row id column of the session's dialect (``ctid`` or ``rowid``)."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return literal_column("ctid")
    return literal_column("rowid")


async def _delete_batch(
    session: AsyncSession, table: Any, where: ColumnElement[bool], limit: int
) -> int:
    row_id = _row_id(session)
    inner = sa.select(row_id).select_from(table).where(where).limit(limit)
    result = await session.exec(delete(table).where(row_id.in_(inner.scalar_subquery())))
    return int(result.rowcount or 0)


def _prefixed(prefixes: tuple[str, ...]) -> ColumnElement[bool]:
    return or_(*(col(JobRun.key).startswith(prefix, autoescape=True) for prefix in prefixes))


async def delete_done_outbox(session: AsyncSession, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` delivered outbox rows done before ``before`` (never pending/dead)."""
    where = and_(
        col(Outbox.state) == OutboxState.DONE.value,
        col(Outbox.done_at).is_not(None),
        col(Outbox.done_at) < before,
    )
    return await _delete_batch(session, Outbox.__table__, where, limit)  # type: ignore[attr-defined]


async def delete_dedupe_runs(session: AsyncSession, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` delivery-dedupe and retention ``job_run`` keys started before ``before``."""
    where = and_(_prefixed(DEDUPE_PREFIXES), col(JobRun.started_at) < before)
    return await _delete_batch(session, JobRun.__table__, where, limit)  # type: ignore[attr-defined]


async def delete_webhook_keys(session: AsyncSession, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` webhook ``Idempotency-Key`` records created before ``before``."""
    where = col(WebhookKey.created_at) < before
    return await _delete_batch(session, WebhookKey.__table__, where, limit)  # type: ignore[attr-defined]


async def delete_heartbeats(session: AsyncSession, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` worker heartbeats last seen before ``before`` whose owner
    holds no outbox lease any more."""
    holds = exists().where(
        col(Outbox.lease_owner) == col(WorkerHeartbeat.owner),
        col(Outbox.state) == OutboxState.PENDING.value,
        col(Outbox.leased_until).is_not(None),
    )
    where = and_(col(WorkerHeartbeat.last_seen) < before, not_(holds))
    return await _delete_batch(session, WorkerHeartbeat.__table__, where, limit)  # type: ignore[attr-defined]


def _epoch(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def _parse_clock_key(key: str) -> tuple[int, int] | None:
    parts = key.split(":")
    if len(parts) < 3 or not parts[1].isdigit() or not parts[2].lstrip("-").isdigit():
        return None
    return int(parts[1]), int(parts[2])


async def delete_clock_runs(
    session: AsyncSession, before: datetime, after_key: str = "", limit: int = BATCH
) -> tuple[int, str]:
    """Delete the dead clock step keys among the next ``limit`` (by key, after ``after_key``)
    started before ``before``.

    Returns the number deleted and the last key looked at ("" when there were none left):
    pass it back as ``after_key`` to go on. A key whose inquiry still has a deadline with
    its epoch stays (the step could be planned again).
    """
    rows = (
        await session.exec(
            select(col(JobRun.key))
            .where(
                _prefixed(CLOCK_PREFIXES),
                col(JobRun.started_at) < before,
                col(JobRun.key) > after_key,
            )
            .order_by(col(JobRun.key))
            .limit(limit)
        )
    ).all()
    keys = [str(key) for key in rows]
    if not keys:
        return 0, ""
    parsed = {key: _parse_clock_key(key) for key in keys}
    ids = sorted({p[0] for p in parsed.values() if p is not None})
    live: dict[int, set[int]] = {}
    if ids:
        conn = await session.connection()
        found = await conn.execute(
            sa.select(
                col(Inquiry.id),
                col(Inquiry.claim_due_at),
                col(Inquiry.reply_due_at),
                col(Inquiry.follow_up_at),
                col(Inquiry.snoozed_until),
            ).where(col(Inquiry.id).in_(ids))
        )
        for inquiry_id, *deadlines in found.all():
            live[inquiry_id or 0] = {e for e in map(_epoch, deadlines) if e is not None}
    dead = [key for key, p in parsed.items() if p is not None and p[1] not in live.get(p[0], set())]
    if dead:
        await session.exec(delete(JobRun).where(col(JobRun.key).in_(dead)))
    return len(dead), keys[-1]
