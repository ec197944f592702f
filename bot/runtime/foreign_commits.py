"""Wake this process's outbox worker and live feed for another process's commits.

A ``serve --role webhooks`` process stores inquiries that the main process delivers; its
own wake-ups (``AppContext.changed``, ``outbox_ready``) cannot cross the process
boundary, and the worker and live feed would see them only at their next poll (a
second). This watcher closes the gap:

- **SQLite**: ``PRAGMA data_version`` on a connection of its own changes when any other
  connection commits; read every ``every`` seconds (a few microseconds, no lock). Our own
  process's commits change it too: a spare wake-up costs the worker one cheap read.
- **PostgreSQL**: ``LISTEN`` on ``store.notify.CHANNEL`` (intake batches announce
  themselves inside their transaction), reconnecting with back-off when the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from typing import Any

from sqlalchemy.engine import make_url

from bot.context import AppContext
from store.notify import CHANNEL

log = logging.getLogger(__name__)


class ForeignCommits:
    """Fires ``ctx.changed`` and ``ctx.outbox_ready`` when another process commits."""

    def __init__(self, ctx: AppContext, *, every: float = 0.1) -> None:
        self.ctx = ctx
        self.every = every
        self._stop = asyncio.Event()
        self.seen = 0  # foreign commits noticed, for tests

    def stop(self) -> None:
        self._stop.set()

    def _fire(self) -> None:
        self.seen += 1
        self.ctx.changed.fire()
        self.ctx.outbox_ready.fire()

    async def run(self) -> None:
        url = make_url(self.ctx.settings.store.url)
        backend = url.get_backend_name()
        if backend == "sqlite" and url.database and url.database != ":memory:":
            await self._watch_sqlite(url.database)
        elif backend == "postgresql":
            await self._listen_postgresql(url)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True once stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _watch_sqlite(self, path: str) -> None:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            last = None
            while not await self._sleep(self.every):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue  # busy for an instant (recovery): ask again next time
                if last is not None and version != last:
                    self._fire()
                last = version
        finally:
            conn.close()

    async def _listen_postgresql(self, url: Any) -> None:
        import asyncpg  # type: ignore[import-untyped]

        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(dsn)
            except Exception as exc:
                log.warning("cannot listen for other processes' commits: %s", type(exc).__name__)
                if await self._sleep(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            lost = asyncio.Event()
            try:
                await conn.add_listener(CHANNEL, lambda *_args: self._fire())
                conn.add_termination_listener(lambda *_args, lost=lost: lost.set())
                stopper = asyncio.ensure_future(self._stop.wait())
                dropped = asyncio.ensure_future(lost.wait())
                await asyncio.wait({stopper, dropped}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                dropped.cancel()
            except Exception:
                log.warning("listening for other processes' commits failed", exc_info=True)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)
