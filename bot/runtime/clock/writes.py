"""The clock's writes inside a chunk's transaction: bulk Events and outbox rows, compare-and-set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from store import inquiries as repo
from store.job_runs import dialect_insert
from store.models import Event, Inquiry, Lane, Outbox, OutboxState

#: One statement for every compare-and-set: the SET columns come from the parameters' names,
#: so its compiled form is cached once per set of columns instead of built per inquiry.
_COMPARE_AND_SET = update(Inquiry).where(
    col(Inquiry.id) == bindparam("_id"), col(Inquiry.version) == bindparam("_version")
)


class Writes:
    """The Events and outbox rows of a chunk's steps, inserted in bulk in the order they were made."""

    def __init__(self, session: AsyncSession) -> None:
        self.events: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self._outbox_insert = dialect_insert(session)(Outbox).on_conflict_do_nothing(
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


async def store_values(
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
        _COMPARE_AND_SET, {"_id": inquiry.id, "_version": inquiry.version, **changes}
    )
    if result.rowcount != 1:
        raise repo.Conflict(inquiry.id)
    return with_values(inquiry, changes)


def with_values(inquiry: Inquiry, values: dict[str, Any]) -> Inquiry:
    """A copy of ``inquiry`` with ``values`` set (what the row holds after the update)."""
    copy = inquiry.model_copy()
    for name, value in values.items():
        setattr(copy, name, value)
    return copy
