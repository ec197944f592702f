"""Interactive writers first across processes on one SQLite file (``store.engine.
WriterPriority``): two priorities on the same file behave as two processes would (an
``flock`` belongs to its open file, not to the process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from store.engine import (
    WriterPriority,
    _priorities,
    create_engine,
    create_session_factory,
    transaction,
)


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
    assert time.monotonic() - began < 0.05


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
    priority = _priorities.get(engine.sync_engine)
    assert priority is not None and priority.path.endswith("p.db-writers")
    other = WriterPriority(priority.path)
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
