"""Exactly-once job claims: a ``JobRun`` row per deterministic key, inserted or found taken.

A step of the clock (or a team's daily digest) may act only in the one
transaction that inserted its key: ``INSERT ... ON CONFLICT DO NOTHING``. On
PostgreSQL a concurrent inserter of the same key waits for the first
transaction and then finds the conflict; SQLite serializes writers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import JobRun


def dialect_insert(session: AsyncSession) -> Any:
    """The ``insert`` construct of the session's dialect (the one with ``on_conflict_do_nothing``)."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


#: ``claim_jobs``'s statement per dialect, built once (building it per call cost more than
#: a small chunk's rows: its construction and cache key).
_CLAIM_MANY = {
    insert: insert(JobRun).on_conflict_do_nothing(index_elements=["key"]).returning(col(JobRun.key))
    for insert in (postgresql.insert, sqlite.insert)
}


async def claim_job(
    session: AsyncSession, key: str, owner: str, now: datetime, detail: dict[str, Any] | None = None
) -> bool:
    """Insert the ``JobRun`` row of ``key``; True only for the one transaction that inserted it."""
    stmt = (
        dialect_insert(session)(JobRun)
        .values(key=key, owner=owner, started_at=now, finished_at=now, detail=detail or {})
        .on_conflict_do_nothing(index_elements=["key"])
    )
    result = await session.exec(stmt)
    return bool(result.rowcount == 1)


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
    stmt = _CLAIM_MANY[dialect_insert(session)]
    rows = [
        {"key": key, "owner": owner, "started_at": now, "finished_at": now, "detail": jobs[key]}
        for key in sorted(jobs)
    ]
    conn = await session.connection()
    result = await conn.execute(stmt, rows)
    return set(result.scalars().all())
