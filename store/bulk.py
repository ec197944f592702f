"""Core bulk inserts for the hot paths: rows built as model objects, sent without the ORM.

``PendingRows`` collects rows nothing reads back before the transaction ends (a new
contact's address, an Idempotency-Key record) and sends them as one
executemany per table, in the order they were added. The group-committing
webhook writer flushes it before its commit and before any item that reads what
earlier items wrote; a failure there fails the batch, whose items are then
redone one by one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy import inspect as sa_inspect
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def row_values(row: SQLModel) -> tuple[Table, dict[str, Any]]:
    """The table of ``row`` and its column values (by column name; no ``id`` when unset)."""
    mapper = sa_inspect(type(row))
    values = {
        attr.columns[0].name: getattr(row, attr.key)
        for attr in mapper.column_attrs
        if not (attr.key == "id" and getattr(row, "id", None) is None)
    }
    return mapper.local_table, values


_INSERT_RETURNING_ID: dict[Table, Any] = {}


def insert_returning_id(table: Table) -> Any:
    """``INSERT INTO table ... RETURNING id`` built once per table; the values go in as
    parameters (a statement built with ``.values(...)`` per row costs more than the insert)."""
    stmt = _INSERT_RETURNING_ID.get(table)
    if stmt is None:
        stmt = _INSERT_RETURNING_ID[table] = insert(table).returning(table.c.id)
    return stmt


async def insert_rows(session: AsyncSession, rows: list[SQLModel]) -> None:
    """Insert ``rows`` with one Core executemany per table, tables in order of first sight."""
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for row in rows:
        table, values = row_values(row)
        by_table.setdefault(table, []).append(values)
    if not by_table:
        return
    conn = await session.connection()
    for table, values_list in by_table.items():
        await conn.execute(insert(table), values_list)


class PendingRows:
    """Rows to insert later in the same transaction, with ``flush``."""

    def __init__(self) -> None:
        self.rows: list[SQLModel] = []

    def add(self, row: SQLModel) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    async def flush(self, session: AsyncSession) -> None:
        rows, self.rows = self.rows, []
        await insert_rows(session, rows)
