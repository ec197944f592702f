"""Core bulk inserts for the hot paths: rows sent without the ORM, most built without objects.

``column_values`` gives what a table model's object would insert without building the
object: constructing one runs SQLAlchemy's instrumentation and pydantic for every
attribute, about as costly as inserting the row. ``PendingRows`` collects rows
nothing reads back before the transaction ends (a new contact's address, an
Idempotency-Key record) and sends them as one
executemany per table, in the order they were added. The group-committing
webhook writer flushes it before its commit and before any item that reads what
earlier items wrote; a failure there fails the batch, whose items are then
redone one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticUndefined
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


#: Per model: its table, (attribute, column) pairs, fixed defaults and default factories.
_SHAPES: dict[
    type[SQLModel],
    tuple[Table, list[tuple[str, str]], dict[str, Any], dict[str, Callable[[], Any]]],
] = {}


def _shape(
    model: type[SQLModel],
) -> tuple[Table, list[tuple[str, str]], dict[str, Any], dict[str, Callable[[], Any]]]:
    shape = _SHAPES.get(model)
    if shape is None:
        mapper = sa_inspect(model)
        names = [(attr.key, attr.columns[0].name) for attr in mapper.column_attrs]
        fixed: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for key, _column in names:
            field = model.model_fields.get(key)
            if field is None:
                continue
            if field.default_factory is not None:
                factories[key] = field.default_factory  # type: ignore[assignment]
            elif field.default is not PydanticUndefined:
                fixed[key] = field.default
        shape = _SHAPES[model] = (mapper.local_table, names, fixed, factories)
    return shape


def column_values(model: type[SQLModel], **values: Any) -> tuple[Table, dict[str, Any]]:
    """The table of ``model`` and the column values ``model(**values)`` would insert (as
    ``row_values`` gives them), without building the object. Fields not given take their
    defaults; ``id`` is left out unless given. Unknown names are an error, as for a model."""
    table, names, fixed, factories = _shape(model)
    known = {key for key, _column in names}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"{model.__name__} has no column {sorted(unknown)}")
    row: dict[str, Any] = {}
    for key, column in names:
        if key in values:
            value = values[key]
        elif key in factories:
            value = factories[key]()
        else:
            value = fixed.get(key)
        if key == "id" and value is None:
            continue
        row[column] = value
    return table, row


_INSERT_RETURNING_ID: dict[Table, Any] = {}


def insert_returning_id(table: Table) -> Any:
    """``INSERT INTO table ... RETURNING id`` built once per table; the values go in as
    parameters (a statement built with ``.values(...)`` per row costs more than the insert)."""
    stmt = _INSERT_RETURNING_ID.get(table)
    if stmt is None:
        stmt = _INSERT_RETURNING_ID[table] = insert(table).returning(table.c.id)
    return stmt


async def insert_values(session: AsyncSession, table: Table, values: dict[str, Any]) -> int:
    """Insert one row given as ``column_values`` with ``INSERT ... RETURNING id``; its id."""
    conn = await session.connection()
    result = await conn.execute(insert_returning_id(table), values)
    return int(result.scalar_one())


async def insert_many_returning_ids(
    session: AsyncSession, rows: list[tuple[Table, dict[str, Any]]]
) -> list[int]:
    """Insert ``rows`` (all of one table, as ``column_values`` gives them) in one
    multi-row ``INSERT ... RETURNING id``; their ids, in the order of ``rows``
    (SQLAlchemy's "insertmanyvalues" with ``sort_by_parameter_order``, SQLite and
    PostgreSQL alike)."""
    if not rows:
        return []
    table = rows[0][0]
    if any(row[0] is not table for row in rows):
        raise ValueError("insert_many_returning_ids: rows of more than one table")
    stmt = _INSERT_MANY_RETURNING_ID.get(table)
    if stmt is None:
        stmt = _INSERT_MANY_RETURNING_ID[table] = insert(table).returning(
            table.c.id, sort_by_parameter_order=True
        )
    conn = await session.connection()
    result = await conn.execute(stmt, [values for _table, values in rows])
    return [int(i) for i in result.scalars().all()]


_INSERT_MANY_RETURNING_ID: dict[Table, Any] = {}

#: A row to insert: a model object, or (table, column values) from ``column_values``.
Row = SQLModel | tuple[Table, dict[str, Any]]


async def insert_rows(session: AsyncSession, rows: list[Row]) -> None:
    """Insert ``rows`` with one Core executemany per table, tables in order of first sight."""
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for row in rows:
        table, values = row if isinstance(row, tuple) else row_values(row)
        by_table.setdefault(table, []).append(values)
    if not by_table:
        return
    conn = await session.connection()
    for table, values_list in by_table.items():
        await conn.execute(insert(table), values_list)


class PendingRows:
    """Rows to insert later in the same transaction, with ``flush``."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def add_values(self, model: type[SQLModel], **values: Any) -> None:
        """A row of ``model`` with these values (``column_values``), no object built."""
        self.rows.append(column_values(model, **values))

    def __len__(self) -> int:
        return len(self.rows)

    async def flush(self, session: AsyncSession) -> None:
        rows, self.rows = self.rows, []
        await insert_rows(session, rows)
