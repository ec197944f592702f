"""SQLite write transactions run their statements on the event loop's thread (issue 14),
but never the ``BEGIN IMMEDIATE`` that may wait for another process's write lock:
the loop keeps serving while a CLI command or a second process holds the database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import (
    SessionFactory,
    WriterConnection,
    create_engine,
    create_session_factory,
    transaction,
)


async def _ticker(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def _engine(path: Path) -> tuple[AsyncEngine, SessionFactory]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine, create_session_factory(engine)


async def test_a_writer_waiting_for_another_process_does_not_block_the_loop(
    tmp_path: Path,
) -> None:
    engine, sessions = await _engine(tmp_path / "w.db")
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for 1 s
    threading.Timer(1.0, other.rollback).start()
    stop, gaps = asyncio.Event(), list[float]()
    ticker = asyncio.create_task(_ticker(stop, gaps))
    started = time.monotonic()
    async with transaction(sessions) as session:
        await (await session.connection()).execute(
            text("INSERT INTO t (v) VALUES ('after the wait')")
        )
    waited = time.monotonic() - started
    stop.set()
    await ticker
    other.close()
    assert waited >= 0.9  # it did wait for the other process ...
    # ... off the loop: a stall would be the whole second; the margin is for a loaded machine
    assert max(gaps) < 0.5, f"the loop stalled {max(gaps):.3f} s"
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalar_one() == "after the wait"
    await engine.dispose()


async def test_statements_inside_the_transaction_run_on_the_loop_thread(tmp_path: Path) -> None:
    engine, sessions = await _engine(tmp_path / "t.db")
    threads: list[str] = []

    def record(_statement: str) -> None:
        threads.append(threading.current_thread().name)

    async with transaction(sessions) as session:
        connection = (await session.connection()).sync_connection
        assert connection is not None
        raw = connection.connection.driver_connection
        assert isinstance(raw, WriterConnection)
        raw._conn.set_trace_callback(record)
        await (await session.connection()).execute(text("INSERT INTO t (v) VALUES ('x')"))
        await (await session.connection()).execute(text("SELECT count(*) FROM t"))
    raw._conn.set_trace_callback(None)
    main = threading.current_thread().name
    # the two statements ran here; the COMMIT on aiosqlite's worker thread
    assert threads[:2] == [main, main]
    assert threads[-1] != main
    assert raw.in_loop is False
    await engine.dispose()


async def test_after_a_failed_transaction_the_next_begin_is_off_the_loop_again(
    tmp_path: Path,
) -> None:
    engine, sessions = await _engine(tmp_path / "f.db")

    async def failing() -> None:
        async with transaction(sessions) as session:
            await (await session.connection()).execute(text("INSERT INTO t (v) VALUES ('lost')"))
            raise RuntimeError("our bug")

    with pytest.raises(RuntimeError):
        await failing()
    other = sqlite3.connect(tmp_path / "f.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(1.0, other.rollback).start()
    stop, gaps = asyncio.Event(), list[float]()
    ticker = asyncio.create_task(_ticker(stop, gaps))
    async with transaction(sessions) as session:
        await (await session.connection()).execute(text("INSERT INTO t (v) VALUES ('kept')"))
    stop.set()
    await ticker
    other.close()
    assert max(gaps) < 0.5, f"the loop stalled {max(gaps):.3f} s"  # a stall would be 1 s
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
    assert rows == ["kept"]
    await engine.dispose()


async def test_only_what_may_wait_goes_to_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call on aiosqlite's worker thread costs the caller a turn of the event loop; in
    a webhook burst a turn took 20-40 ms, and a click's five hops made it wait five turns.
    A write transaction now goes to the thread twice: ``BEGIN IMMEDIATE`` (it may wait for
    another process) and the commit (it may sync the file). A read transaction's
    ``BEGIN`` and commit, and the pool's rollback after a commit, take no lock and touch
    no file: they run on the caller's thread; each of its statements is one trip with its
    rows (it was four: cursor, execute, fetch, close)."""
    import aiosqlite

    path = tmp_path / "h.db"
    engine, sessions = await _engine(path)
    reader = create_engine(f"sqlite+aiosqlite:///{path}", readonly=True)
    readers = create_session_factory(reader)
    hops: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn))))
        return await real(self, fn, *args, **kwargs)

    for factory in (sessions, readers):  # connected first (connecting takes its own trips)
        async with transaction(factory) as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    for _ in range(2):
        hops.clear()
        async with transaction(sessions) as session:
            await (await session.connection()).execute(text("INSERT INTO t (v) VALUES ('x')"))
        assert len(hops) == 2, hops  # BEGIN IMMEDIATE, then the commit
        hops.clear()
        async with transaction(readers) as session:
            count = (await session.exec(text("SELECT count(*) FROM t"))).scalar_one()  # type: ignore[call-overload]
            rows = (await session.exec(text("SELECT v FROM t ORDER BY id"))).all()  # type: ignore[call-overload]
        assert len(hops) == 2, hops  # one per statement, its rows with it
        hops.clear()
        async with transaction(sessions) as session:  # a write transaction that wrote nothing
            await (await session.connection()).execute(text("SELECT 1"))
        assert len(hops) == 1, hops  # BEGIN IMMEDIATE only
    assert count == 2 and [tuple(r) for r in rows] == [("x",), ("x",)]
    await reader.dispose()
    await engine.dispose()
