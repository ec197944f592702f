"""Writers of several processes on one SQLite file (``store.process_locks``): clicks first,
one writer at a time handed over at once. Two lock objects on the same file behave as two
processes would (an ``flock`` belongs to its open file, not to the process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from store.engine import _process_locks, create_engine, create_session_factory, transaction
from store.process_locks import WriterPriority, WriteToken


async def test_a_bulk_writer_waits_while_another_process_has_a_click_waiting(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "db-writers")
    clicks, intake = WriterPriority(path), WriterPriority(path, max_wait=5.0)
    await clicks.interactive()
    turn = asyncio.ensure_future(intake.bulk_turn())
    await asyncio.sleep(0.1)
    assert not turn.done()  # the batch does not begin while the click waits
    clicks.done()
    await asyncio.wait_for(turn, 1.0)
    # with nobody waiting, a batch begins at once
    began = time.monotonic()
    await intake.bulk_turn()
    assert time.monotonic() - began < 1.0  # not the 5 s max_wait: nobody was waiting


async def test_a_click_that_never_ends_holds_a_batch_back_for_max_wait_only(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "db-writers")
    stuck, intake = WriterPriority(path), WriterPriority(path, max_wait=0.2)
    await stuck.interactive()
    began = time.monotonic()
    await asyncio.wait_for(intake.bulk_turn(), 2.0)
    assert 0.15 <= time.monotonic() - began < 1.5
    stuck.done()


async def test_interactive_writers_of_many_processes_share_it(tmp_path: Path) -> None:
    path = str(tmp_path / "db-writers")
    first, second = WriterPriority(path), WriterPriority(path)
    await asyncio.wait_for(first.interactive(), 1.0)
    await asyncio.wait_for(second.interactive(), 1.0)  # shared: neither waits for the other
    first.done()
    second.done()


async def test_every_sqlite_write_transaction_goes_through_it(tmp_path: Path) -> None:
    """The engine of a SQLite file has one; a bulk transaction waits for a click announced
    by another engine on the same file, then commits."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    engine = create_engine(url)
    locks = _process_locks.get(engine.sync_engine)
    assert locks is not None and locks.priority.path.endswith("p.db-writers")
    other = WriterPriority(locks.priority.path)
    await other.interactive()
    sessions = create_session_factory(engine)

    async def bulk() -> None:
        async with transaction(sessions, bulk=True) as session:
            await (await session.connection()).execute(
                text("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            )

    batch = asyncio.ensure_future(bulk())
    await asyncio.sleep(0.1)
    assert not batch.done()
    other.done()
    await asyncio.wait_for(batch, 2.0)
    async with transaction(sessions) as session:  # an interactive one goes through at once
        await (await session.connection()).execute(text("INSERT INTO t VALUES (1)"))
    await engine.dispose()


async def test_the_write_token_is_handed_over_the_moment_it_is_let_go(tmp_path: Path) -> None:
    path = str(tmp_path / "db-write")
    first, second = WriteToken(path), WriteToken(path)
    await first.acquire()
    waiting = asyncio.ensure_future(second.acquire())
    await asyncio.sleep(0.1)
    assert not waiting.done()  # one writer of all processes at a time
    let_go = time.monotonic()
    first.release()
    await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - let_go < 0.1  # woken, not polling with growing sleeps
    second.release()


async def test_a_writer_cancelled_while_waiting_does_not_keep_the_token(tmp_path: Path) -> None:
    path = str(tmp_path / "db-write")
    first, second, third = WriteToken(path), WriteToken(path), WriteToken(path)
    await first.acquire()
    waiting = asyncio.ensure_future(second.acquire())
    await asyncio.sleep(0.05)
    waiting.cancel()
    first.release()  # the cancelled waiter's thread takes it, then gives it back
    await asyncio.wait_for(third.acquire(), 2.0)
    third.release()


async def test_two_engines_on_one_file_write_in_turn(tmp_path: Path) -> None:
    """Two write engines (as two processes) interleave 2 x 50 transactions; all commit."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    engines = [create_engine(url), create_engine(url)]
    sessions = [create_session_factory(e) for e in engines]
    async with transaction(sessions[0]) as session:
        await (await session.connection()).execute(text("CREATE TABLE t (x INTEGER)"))

    async def writes(n: int, bulk: bool) -> None:
        for i in range(50):
            async with transaction(sessions[n], bulk=bulk) as session:
                await (await session.connection()).execute(
                    text("INSERT INTO t VALUES (:x)"), {"x": n * 1000 + i}
                )

    await asyncio.wait_for(asyncio.gather(writes(0, True), writes(1, False)), 30)
    async with transaction(sessions[0]) as session:
        count = (await (await session.connection()).execute(text("SELECT count(*) FROM t"))).one()
    assert count[0] == 100
    for engine in engines:
        await engine.dispose()


async def test_the_token_is_let_go_when_the_commit_is_done_not_when_the_loop_returns(
    tmp_path: Path,
) -> None:
    """A busy event loop (a burst being parsed) must not keep the other process waiting: the
    commit's own thread lets go of the token. Here the loop is blocked for 0.5 s while the
    commit runs; "the other process" (a thread with its own descriptor) gets the token
    within that time."""
    import fcntl
    import os
    import threading

    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        await (await session.connection()).execute(text("CREATE TABLE t (x INTEGER)"))
    locks = _process_locks.get(engine.sync_engine)
    assert locks is not None
    got_it: list[float] = []
    inside = threading.Event()

    def other_process() -> None:
        fd = os.open(locks.token.path, os.O_RDWR)
        try:
            inside.wait(5)
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while the transaction holds it
            got_it.append(time.monotonic())
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    other = threading.Thread(target=other_process)
    other.start()
    loop = asyncio.get_running_loop()
    async with transaction(sessions) as session:
        await (await session.connection()).execute(text("INSERT INTO t VALUES (1)"))
        inside.set()
        await asyncio.sleep(0.05)  # the other waits for the token now
        blocked: list[float] = []

        def block() -> None:
            blocked.append(time.monotonic())
            time.sleep(0.5)

        # the loop's next turn (while the commit is in the database thread) blocks it
        loop.call_soon(block)
    back = time.monotonic()
    other.join(5)
    assert got_it and blocked
    assert got_it[0] < back - 0.1, "the token waited for the event loop"
    await engine.dispose()
