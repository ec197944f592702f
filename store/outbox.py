"""The outbox: side effects written in the same transaction as the state change.

``enqueue`` inserts a row keyed by an idempotency key (a second enqueue of the
same key is a no-op). Workers ``lease`` due rows: on PostgreSQL the candidates
are picked with ``FOR UPDATE SKIP LOCKED`` so several processes never take the
same row; on both backends the lease itself is a compare-and-set on
``leased_until``, so a crashed worker's rows come back when its lease runs out.

Leases are short and renewed while the worker lives (``heartbeat`` records the
owner in ``worker_heartbeat`` and extends its leases); a lease whose owner has
not beaten for ``dead_after`` is free at once, so one killed process holds a
channel's FIFO for seconds, not for the whole lease (``lease(..., dead_before=)``).
A row's ``attempted_at`` is committed before its first send (``mark_attempted``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, or_, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Lane, Outbox, OutboxState, WorkerHeartbeat
from store.types import UTCDateTime


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    kind: str,
    now: datetime,
    lane: Lane = Lane.BULK,
    destination: str = "",
    inquiry_id: int | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> None:
    """Queue one row (``enqueue_many`` of one); a key already queued is kept as it is."""
    row = row_values(
        key=key,
        channel=channel,
        kind=kind,
        now=now,
        lane=lane,
        destination=destination,
        inquiry_id=inquiry_id,
        payload=payload,
        not_before=not_before,
    )
    await session.flush()  # as a statement through the session would: pending objects first
    await enqueue_many(session, [row])


def row_values(
    *,
    key: str,
    channel: str,
    kind: str,
    now: datetime,
    lane: Lane = Lane.BULK,
    destination: str = "",
    inquiry_id: int | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new pending outbox row (``enqueue``, ``enqueue_many``)."""
    return {
        "key": key,
        "lane": lane.value,
        "channel": channel,
        "destination": destination,
        "kind": kind,
        "inquiry_id": inquiry_id,
        "payload": payload or {},
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "lease_owner": "",
        "last_error": "",
        "created_at": now,
    }


#: The insert of ``enqueue_many`` per dialect (a key already queued is kept), built once:
#: the clock's chunks use it too (``bot.runtime.clock.writes``).
ENQUEUE_MANY = {
    "postgresql": postgresql.insert(Outbox).on_conflict_do_nothing(index_elements=["key"]),
    "sqlite": sqlite.insert(Outbox).on_conflict_do_nothing(index_elements=["key"]),
}


async def enqueue_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Queue ``rows`` (``row_values``) with one executemany; a key already queued is kept
    as it is."""
    if not rows:
        return
    conn = await session.connection()
    await conn.execute(ENQUEUE_MANY[conn.dialect.name], rows)


def _free(row: Any, now: datetime, dead_before: datetime | None) -> ColumnElement[bool]:
    """``row`` (the table or an alias) is not held by a live lease."""
    expired = or_(col(row.leased_until).is_(None), col(row.leased_until) < now)
    if dead_before is None:
        return expired
    beat = aliased(WorkerHeartbeat)
    owner_dead = exists().where(
        col(beat.owner) == col(row.lease_owner), col(beat.last_seen) < dead_before
    )
    return or_(expired, owner_dead)


async def lease(
    session: AsyncSession,
    *,
    lane: Lane,
    owner: str,
    now: datetime,
    lease_for: timedelta,
    limit: int,
    skip_destinations: Sequence[str] = (),
    fifo: bool = False,
    per_destination: int = 0,
    dead_before: datetime | None = None,
) -> list[Outbox]:
    """Take up to ``limit`` due rows of ``lane`` for ``owner`` (oldest first).

    ``fifo``: a row is only taken when no older pending row of the same channel
    and destination is in flight (leased) or waiting for a retry, so a channel's
    posts go out in enqueue order even with several processes delivering.
    ``per_destination``: at most this many rows of one destination (0: no cap), so a
    process never sits on a channel's queue. ``dead_before``: leases whose owner's
    heartbeat is older than this are free (the owner died).
    """
    stmt = (
        select(Outbox)
        .where(
            col(Outbox.state) == OutboxState.PENDING.value,
            col(Outbox.lane) == lane.value,
            col(Outbox.next_attempt_at) <= now,
            _free(Outbox, now, dead_before),
        )
        .order_by(col(Outbox.id))
        .limit(limit)
    )
    if skip_destinations:
        stmt = stmt.where(col(Outbox.destination).not_in(list(skip_destinations)))
    if fifo:
        older = aliased(Outbox)
        stmt = stmt.where(
            ~exists().where(
                col(older.channel) == col(Outbox.channel),
                col(older.destination) == col(Outbox.destination),
                col(older.lane) == col(Outbox.lane),
                col(older.state) == OutboxState.PENDING.value,
                col(older.id) < col(Outbox.id),
                or_(col(older.next_attempt_at) > now, ~_free(older, now, dead_before)),
            )
        )
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Outbox)
        if fifo:
            # Serialise FIFO leases across processes: without it, two processes could each
            # see the other's rows as not yet leased (uncommitted) and take a later row
            # of the same destination. Lease transactions are short, so this costs little.
            lock = text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_lease_lock_key(lane))
            await (await session.connection()).execute(lock)
    candidates = (await session.exec(stmt)).all()
    for row in candidates:  # detached: the lease below is plain SQL, the objects are our copies
        session.expunge(row)
    taken: list[Outbox] = []
    until = now + lease_for
    per_dest: dict[tuple[str, str], int] = {}
    for row in candidates:
        dest = (row.channel, row.destination)
        if per_destination and per_dest.get(dest, 0) >= per_destination:
            continue
        # compare-and-set on the owner seen: of two processes taking back a dead owner's
        # row (or a never-leased one), exactly one wins
        result = await session.exec(
            update(Outbox)
            .where(
                col(Outbox.id) == row.id,
                col(Outbox.state) == OutboxState.PENDING.value,
                col(Outbox.lease_owner) == row.lease_owner,
                _free(Outbox, now, dead_before),
            )
            .values(leased_until=until, lease_owner=owner, attempts=col(Outbox.attempts) + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            row.leased_until, row.lease_owner, row.attempts = until, owner, row.attempts + 1
            taken.append(row)
            per_dest[dest] = per_dest.get(dest, 0) + 1
    return taken


async def heartbeat(
    session: AsyncSession, *, owner: str, now: datetime, lease_for: timedelta
) -> int:
    """Say ``owner`` is alive and extend its leases to ``now + lease_for``; the number of
    leases renewed."""
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(WorkerHeartbeat).values(owner=owner, last_seen=now)
    await session.exec(
        stmt.on_conflict_do_update(index_elements=["owner"], set_={"last_seen": now})
    )
    result = await session.exec(
        update(Outbox)
        .where(
            col(Outbox.lease_owner) == owner,
            col(Outbox.state) == OutboxState.PENDING.value,
            col(Outbox.leased_until).is_not(None),
            col(Outbox.leased_until) >= now,  # a lapsed lease may be someone else's by now
        )
        .values(leased_until=now + lease_for)
    )
    return int(result.rowcount)


async def forget_worker(session: AsyncSession, owner: str, *, stale_before: datetime) -> None:
    """Drop ``owner``'s heartbeat (a clean stop) and heartbeats dead for long (housekeeping)."""
    await session.exec(
        delete(WorkerHeartbeat).where(
            or_(
                col(WorkerHeartbeat.owner) == owner,
                and_(col(WorkerHeartbeat.last_seen) < stale_before),
            )
        )
    )


async def mark_attempted(session: AsyncSession, row_id: int, now: datetime) -> None:
    """Record that a send of ``row_id`` is about to start (kept from the first attempt)."""
    await session.exec(
        update(Outbox)
        .where(col(Outbox.id) == row_id, col(Outbox.attempted_at).is_(None))
        .values(attempted_at=now)
    )


async def attempted_at(session: AsyncSession, row_id: int) -> datetime | None:
    """When the first send of ``row_id`` was attempted (``None``: never)."""
    return (await session.exec(select(Outbox.attempted_at).where(col(Outbox.id) == row_id))).first()


async def release_all_leases(session: AsyncSession) -> int:
    """Hand back every lease (SQLite start-up: one process owns the file, so any lease
    left in it belongs to a process that died; waiting for it to expire only delays
    what it had taken)."""
    result = await session.exec(
        update(Outbox)
        .where(
            col(Outbox.state) == OutboxState.PENDING.value, col(Outbox.leased_until).is_not(None)
        )
        .values(leased_until=None, lease_owner="")
    )
    return int(result.rowcount)


def _lease_lock_key(lane: Lane) -> int:
    return zlib.crc32(f"claimdesk-outbox-lease:{lane.value}".encode())


async def has_due(
    session: AsyncSession, *, lane: Lane, now: datetime, dead_before: datetime | None = None
) -> bool:
    """Is anything of ``lane`` deliverable now? A cheap read before taking the write lock
    (the worker asks after every intake batch: the statement is built once, bound per call)."""
    heartbeats = dead_before is not None
    stmt = _HAS_DUE.get(heartbeats)
    if stmt is None:
        now_param = bindparam("now", type_=UTCDateTime())
        dead_param = bindparam("dead_before", type_=UTCDateTime())
        stmt = _HAS_DUE[heartbeats] = (
            select(Outbox.id)
            .where(
                col(Outbox.state) == OutboxState.PENDING.value,
                col(Outbox.lane) == bindparam("lane"),
                col(Outbox.next_attempt_at) <= now_param,
                _free(Outbox, now_param, dead_param if heartbeats else None),  # type: ignore[arg-type]
            )
            .limit(1)
        )
    params: dict[str, Any] = {"lane": lane.value, "now": now}
    if heartbeats:
        params["dead_before"] = dead_before
    conn = await session.connection()
    return (await conn.execute(stmt, params)).first() is not None


_HAS_DUE: dict[bool, Any] = {}


async def complete(session: AsyncSession, row_id: int, owner: str, now: datetime) -> bool:
    """Mark delivered; False when our lease was lost (another worker owns it now)."""
    result = await session.exec(
        update(Outbox)
        .where(col(Outbox.id) == row_id, col(Outbox.lease_owner) == owner)
        .values(state=OutboxState.DONE.value, done_at=now, leased_until=None, last_error="")
    )
    return result.rowcount == 1


#: ``last_error`` of a row put back because its card was not posted yet
WAITING_FOR_POST = "waiting for the card post"


async def wake_waiting_for_post(session: AsyncSession, posted: Outbox, now: datetime) -> int:
    """Make due now the rows of ``posted``'s card (same inquiry, channel and destination)
    that were put back to wait for its post: a thread note then follows the post at once,
    not a retry interval later. Returns how many were woken."""
    result = await session.exec(
        update(Outbox)
        .where(
            col(Outbox.inquiry_id) == posted.inquiry_id,
            col(Outbox.channel) == posted.channel,
            col(Outbox.destination) == posted.destination,
            col(Outbox.state) == OutboxState.PENDING.value,
            col(Outbox.last_error) == WAITING_FOR_POST,
            col(Outbox.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
    )
    return int(result.rowcount or 0)


async def retry_later(
    session: AsyncSession, row_id: int, owner: str, *, error: str, at: datetime, dead: bool = False
) -> None:
    await session.exec(
        update(Outbox)
        .where(col(Outbox.id) == row_id, col(Outbox.lease_owner) == owner)
        .values(
            state=OutboxState.DEAD.value if dead else OutboxState.PENDING.value,
            next_attempt_at=at,
            leased_until=None,
            last_error=error[:2000],
        )
    )


async def pending_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(
        select(Outbox.lane, func.count())
        .where(col(Outbox.state) == OutboxState.PENDING.value)
        .group_by(col(Outbox.lane))
    )
    return {lane: int(n) for lane, n in rows.all()}
