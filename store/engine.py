"""Engine and session factory for SQLite (WAL, the default) and PostgreSQL (asyncpg).

SQLite transactions start with ``BEGIN IMMEDIATE``: a deferred transaction
that reads and then writes can fail with "database is locked" the moment
another writer commits (WAL snapshot upgrade), whatever the busy timeout.
Taking the write lock up front lets concurrent claims queue instead of fail.

Inside one process, writers queue on a ``WriteLock`` before ``BEGIN IMMEDIATE``;
bulk writers (the group-committed webhook intake) pass ``bulk=True`` and give
way to every interactive writer waiting (a card click never queues behind a
burst of webhooks, only behind the one batch being written).

The statements of a SQLite write transaction run on the event loop's thread,
not on aiosqlite's worker thread (``WriterConnection``). Each hop to that
thread and back cost more than most of our statements (a ``SELECT 1``: ~375 µs
through SQLAlchemy and aiosqlite, ~1 µs in sqlite3), and the group-committed
intake makes about eight per inquiry. Only the statements after ``BEGIN
IMMEDIATE`` has succeeded run in-loop: from then on no statement of the
transaction can wait for another connection's lock (WAL: readers never block
the writer), so none can stall the loop on the busy timeout. ``BEGIN``, the
commit (it may checkpoint the WAL and sync the file) and the rollback still go
through the worker thread. Readers (``readonly``) keep the thread: a long page
query never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager as aiosqlite_result
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession

from store.process_locks import ProcessLocks, release_with_commit

log = logging.getLogger(__name__)


def create_engine(url: str, *, echo: bool = False, readonly: bool = False) -> AsyncEngine:
    """An async engine with the per-backend settings claimdesk relies on.

    ``readonly`` (SQLite): transactions start DEFERRED, so reads (the live feed,
    pages, the API, "is anything due?" peeks) never queue for the write lock;
    WAL lets them read while a writer commits.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "isolation_level": None}
        kwargs["async_creator"] = _creator(
            parsed, SQLiteConnection if readonly else WriterConnection
        )
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, immediate=not readonly)
        if not readonly and parsed.database and parsed.database != ":memory:":
            _process_locks[engine.sync_engine] = ProcessLocks(parsed.database)
    return engine


class _OneTripCursor(aiosqlite.Cursor):
    """An aiosqlite cursor whose statement and its rows make one trip to the worker thread
    (aiosqlite makes one each to create the cursor, execute, fetch and close it)."""

    _rows: deque[Any] | None = None

    async def execute(self, sql: str, parameters: Any = None) -> aiosqlite.Cursor:
        cursor = self._cursor

        def run() -> list[Any] | None:
            cursor.execute(sql, [] if parameters is None else parameters)
            return cursor.fetchall() if cursor.description is not None else None

        rows = await self._execute(run)  # type: ignore[no-untyped-call]
        self._rows = None if rows is None else deque(rows)
        return self

    async def fetchall(self) -> Any:
        rows, self._rows = self._rows, None
        return list(rows) if rows is not None else await super().fetchall()

    async def fetchone(self) -> Any:
        if self._rows is None:
            return await super().fetchone()
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Any:
        if self._rows is None:
            return await super().fetchmany(size)
        count = self._cursor.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def close(self) -> None:
        self._rows = None
        self._cursor.close()  # it only resets its statement: nothing to wait for


class SQLiteConnection(aiosqlite.Connection):
    """An aiosqlite connection that skips the hop to its worker thread where a call cannot
    wait for a lock or the disk.

    Under load each hop costs the caller a whole turn of the event loop (the thread's
    answer is queued behind everything else ready), so a card click of five hops waited
    five turns of a loop busy with a webhook burst. A statement and its rows are one hop
    (``_OneTripCursor``), not four. No hop for: a deferred ``BEGIN``
    (it takes no lock), the commit of a transaction that changed nothing (it only lets go
    of its read snapshot or its unused write lock), and the rollback of a connection with
    no transaction open (the pool's reset after a commit). ``BEGIN IMMEDIATE`` is one hop
    instead of three (cursor, execute, close)."""

    in_loop = False
    _changes_at_begin = -1  # ``total_changes`` when this transaction began

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.in_loop and self._connection is not None:
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    @aiosqlite_result
    async def cursor(self) -> aiosqlite.Cursor:
        """A cursor made here (a sqlite3 cursor touches no file): see ``_OneTripCursor``."""
        if self._connection is None:
            raise ValueError("no active connection")
        return _OneTripCursor(self, self._connection.cursor())

    async def begin(self, *, immediate: bool) -> None:
        """``BEGIN IMMEDIATE`` in the worker thread (it may wait for another process's
        write lock); a deferred ``BEGIN`` on the caller's thread."""
        connection = self._connection
        if connection is None:
            raise ValueError("no active connection")

        def begin() -> None:
            connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            self._changes_at_begin = connection.total_changes

        if immediate:
            await super()._execute(begin)  # type: ignore[no-untyped-call]
        else:
            begin()

    def _wrote_nothing(self) -> bool:
        connection = self._connection
        return (
            connection is not None
            and connection.in_transaction
            and connection.total_changes == self._changes_at_begin
        )

    async def commit(self) -> None:
        if self._wrote_nothing():
            assert self._connection is not None
            self._connection.commit()  # nothing to write or sync: a lock let go of
            return
        await super().commit()

    async def rollback(self) -> None:
        if self._connection is not None and not self._connection.in_transaction:
            return  # nothing open (the pool's reset after a commit)
        await super().rollback()


class WriterConnection(SQLiteConnection):
    """A ``SQLiteConnection`` that runs its calls on the event loop's thread while
    ``in_loop`` is set (inside a write transaction that holds SQLite's write lock)."""

    async def commit(self) -> None:
        """Commit in the database thread; then, in that thread, let go of the transaction's
        cross-process write token (``store.process_locks``), if it holds one."""
        token = release_with_commit.get()
        if token is None or self._connection is None:
            await super().commit()
            return
        connection = self._connection

        def commit_then_release() -> None:
            try:
                connection.commit()
            finally:
                token.release()

        if self._wrote_nothing():
            commit_then_release()  # nothing to write or sync: here, as in the base class
            return
        await self._execute(commit_then_release)


def _creator(url: Any, cls: type[SQLiteConnection]) -> Callable[[], SQLiteConnection]:
    """``async_creator`` for a SQLite engine: the dialect's own connect arguments, opened
    as ``cls`` (usable from the loop's thread too)."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
    kwargs.update(timeout=30, isolation_level=None, check_same_thread=False)

    def create() -> SQLiteConnection:
        connection = cls(partial(sqlite3.connect, *args, **kwargs), 64)
        # a daemon thread, as SQLAlchemy makes aiosqlite's own (before aiosqlite 0.22 the
        # connection was the thread)
        thread = connection if isinstance(connection, threading.Thread) else connection._thread
        thread.daemon = True
        return connection

    return create


def _driver_connection(connection: Any) -> Any:
    """The aiosqlite connection under a SQLAlchemy ``Connection``."""
    return connection.connection.driver_connection


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    if immediate:
        _write_locks[engine.sync_engine] = WriteLock()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        driver = _driver_connection(connection)
        if not isinstance(driver, SQLiteConnection):  # an in-memory test engine
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
            return
        driver.in_loop = False  # BEGIN IMMEDIATE may wait for another process: not on the loop
        await_(driver.begin(immediate=immediate))
        if isinstance(driver, WriterConnection) and immediate:
            driver.in_loop = True  # the write lock is ours: nothing after this waits for it

    if immediate:

        @event.listens_for(engine.sync_engine, "commit")
        @event.listens_for(engine.sync_engine, "rollback")
        def _on_end(connection: Any) -> None:
            # fired before the commit or rollback: those go through the worker thread
            driver = _driver_connection(connection)
            if isinstance(driver, WriterConnection):
                driver.in_loop = False

        @event.listens_for(engine.sync_engine.pool, "reset")
        def _on_reset(dbapi_connection: Any, *_: Any) -> None:
            # a connection back in the pool (its rollback bypasses the events above)
            driver = getattr(dbapi_connection, "_connection", None)
            if isinstance(driver, WriterConnection):
                driver.in_loop = False


SessionFactory = async_sessionmaker[AsyncSession]


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class WriteLock:
    """An asyncio lock with two queues: a bulk waiter gets it only when no interactive one waits.

    Handed over on release (FIFO within a queue), so a waiter woken is the owner:
    no thundering herd, and nobody arriving meanwhile can barge in.
    """

    def __init__(self) -> None:
        self._held = False
        self._interactive: deque[asyncio.Future[None]] = deque()
        self._bulk: deque[asyncio.Future[None]] = deque()

    def waiting(self) -> int:
        """How many writers wait (both queues)."""
        return len(self._interactive) + len(self._bulk)

    def interactive_waiting(self) -> bool:
        """Whether an interactive writer (a click, a reply) waits for the lock."""
        return any(not waiter.done() for waiter in self._interactive)

    async def acquire(self, *, bulk: bool = False) -> None:
        if not self._held and not self._interactive and not self._bulk:
            self._held = True
            return
        queue = self._bulk if bulk else self._interactive
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._interactive, self._bulk):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # handed over: stays held
                    return
        self._held = False


#: SQLite write engines (on a file) -> their cross-process ``ProcessLocks``.
_process_locks: weakref.WeakKeyDictionary[Any, ProcessLocks] = weakref.WeakKeyDictionary()

#: SQLite write engines -> the lock that queues their writers inside this process.
_write_locks: weakref.WeakKeyDictionary[Any, WriteLock] = weakref.WeakKeyDictionary()
_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("claimdesk_write_tx", default=False)


def _write_lock(sessions: SessionFactory) -> WriteLock | None:
    """The in-process write lock of ``sessions``' engine (SQLite write engines only)."""
    bind = sessions.kw.get("bind")
    return _write_locks.get(bind.sync_engine) if bind is not None else None


def writes_on_the_loop(sessions: SessionFactory) -> bool:
    """Whether ``sessions``' write transactions run their statements on the event loop's
    thread (SQLite, ``WriterConnection``): a long one stalls the loop until it yields."""
    return _write_lock(sessions) is not None


def interactive_writer_waiting(sessions: SessionFactory) -> bool:
    """Whether an interactive writer of this process waits for ``sessions``' write lock
    (SQLite); a bulk writer holding it ends its work early to let it in. Always ``False``
    on PostgreSQL, whose writers do not queue on one lock."""
    lock = _write_lock(sessions)
    return lock is not None and lock.interactive_waiting()


@asynccontextmanager
async def transaction(
    sessions: SessionFactory, *, bulk: bool = False
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any exception.

    On SQLite, writers of this process queue on a ``WriteLock`` before
    ``BEGIN IMMEDIATE``: SQLite's own busy handler waits by sleeping with
    growing back-off, which under a burst turns into seconds of latency;
    an in-process queue hands the lock over the moment it is free. ``bulk``
    writers let every waiting interactive writer go first.
    """
    lock = _write_lock(sessions)
    if lock is None:
        async with sessions() as session, session.begin():
            yield session
        return
    if _holding.get():
        raise RuntimeError("nested write transaction on SQLite: it would wait for itself")
    await lock.acquire(bulk=bulk)
    token = _holding.set(True)
    locks = _process_locks.get(sessions.kw["bind"].sync_engine)
    try:
        if locks is None:
            async with sessions() as session, session.begin():
                yield session
        else:
            async with locks.writing(bulk=bulk), sessions() as session, session.begin():
                yield session
    finally:
        _holding.reset(token)
        lock.release()
