"""The clock's writes inside a chunk's transaction: bulk Events, outbox rows and compare-and-sets.

The compare-and-sets of a chunk are sent together when the chunk's writes are
flushed: an executemany on SQLite (its summed rowcount is exact), one
``UPDATE ... FROM (VALUES ...) RETURNING id`` on PostgreSQL (asyncpg's
executemany reports no rowcount). Either way a row that did not match its
version fails the chunk, as one statement per inquiry did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, TextClause, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from store import inquiries as repo
from store import outbox
from store.models import Event, Inquiry

#: One statement for every compare-and-set: the SET columns come from the parameters' names,
#: so its compiled form is cached once per set of columns instead of built per inquiry.
_COMPARE_AND_SET = update(Inquiry).where(
    col(Inquiry.id) == bindparam("_id"), col(Inquiry.version) == bindparam("_version")
)


#: Built once (per chunk, building it cost more than a small chunk's rows).
_EVENT_INSERT = insert(Event)


class Writes:
    """The Events and outbox rows of a chunk's steps, inserted in bulk in the order they were made."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

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
            outbox.row_values(
                key=key,
                channel=channel,
                kind=kind,
                destination=destination,
                inquiry_id=inquiry_id,
                now=now,
                payload=payload,
            )
        )

    def store_values(
        self, inquiry: Inquiry, now: datetime, *, bump: bool, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Compare-and-set at the version we read, sent with the next ``flush`` (under our row
        lock nothing can have changed it: a mismatch is a bug or a lock we did not get, and
        fails the chunk); ``bump`` when the card must re-render. Returns the columns it sets
        (``with_values(inquiry, ...)`` is the row as it will be stored, without re-reading it)."""
        assert inquiry.id is not None
        changes = dict(values)
        if bump:
            changes.update(updated_at=now, version=inquiry.version + 1)
        self.updates.append({"_id": inquiry.id, "_version": inquiry.version, **changes})
        return changes

    async def flush(self, conn: AsyncConnection) -> None:
        if self.updates:
            await compare_and_set(conn, self.updates)
            self.updates = []
        if self.events:
            await conn.execute(_EVENT_INSERT, self.events)
            self.events = []
        if self.outbox:
            await conn.execute(outbox.ENQUEUE_MANY[conn.dialect.name], self.outbox)
            self.outbox = []


async def compare_and_set(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Each row's SET columns where ``id == _id and version == _version``; ``Conflict`` unless
    every row matched. Rows are grouped by their set of columns (one statement per group)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for names, group in groups.items():
        if conn.dialect.name == "postgresql":
            matched = await _compare_and_set_values(conn, names, group)
        else:
            matched = (await conn.execute(_COMPARE_AND_SET, group)).rowcount
        if matched != len(group):
            raise repo.Conflict(int(group[0]["_id"]))


async def _compare_and_set_values(
    conn: AsyncConnection, names: tuple[str, ...], group: list[dict[str, Any]]
) -> int:
    stmt = _unnest_statement(names)
    params = {f"p_{name}": [row[name] for row in group] for name in names}
    return len((await conn.execute(stmt, params)).all())


#: One ``UPDATE ... FROM unnest(arrays)`` per set of columns: its text never changes with the
#: number of rows, so it is compiled and prepared once (a VALUES list would be per chunk).
_UNNEST: dict[tuple[str, ...], TextClause] = {}


def _unnest_statement(names: tuple[str, ...]) -> TextClause:
    stmt = _UNNEST.get(names)
    if stmt is None:
        table = Inquiry.__table__  # type: ignore[attr-defined]
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        types: dict[str, Any] = {"_id": Integer(), "_version": Integer()}
        types.update({name: table.c[name].type for name in names if not name.startswith("_")})
        arrays = ", ".join(
            f"CAST(:p_{name} AS {types[name].compile(dialect=dialect)}[])" for name in names
        )
        sets = ", ".join(f'"{name}" = v."{name}"' for name in names if not name.startswith("_"))
        quoted = ", ".join(f'"{name}"' for name in names)
        stmt = text(
            f"UPDATE inquiry SET {sets} FROM unnest({arrays}) AS v({quoted})"
            ' WHERE inquiry.id = v."_id" AND inquiry.version = v."_version" RETURNING inquiry.id'
        ).bindparams(
            *(bindparam(f"p_{name}", type_=postgresql.ARRAY(types[name])) for name in names)
        )
        _UNNEST[names] = stmt
    return stmt


def with_values(inquiry: Inquiry, values: dict[str, Any]) -> Inquiry:
    """A copy of ``inquiry`` with ``values`` set (what the row holds after the update)."""
    copy = inquiry.model_copy()
    for name, value in values.items():
        setattr(copy, name, value)
    return copy
