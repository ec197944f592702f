"""Writers of several processes on one SQLite file: a prompt hand-over, clicks first.

``claimdesk serve --role webhooks`` runs beside the main process on the same database.
SQLite alone lets a writer that finds the file locked sleep in its busy handler, for
longer and longer (1, 2, 5 ... 100 ms), so the other process's back-to-back webhook
batches can keep a click out for half a second, and two processes taking turns
lose most of their time asleep. Two ``flock``s on files beside the database
settle it (inside a process ``store.engine.WriteLock`` already orders the writers,
so each process has at most one writer here and one descriptor per file is enough):

- ``<database>-write``: held exclusively from before ``BEGIN IMMEDIATE`` to after the
  commit. A waiting process blocks on it in a thread and the kernel wakes it the moment
  the holder lets go (a killed process lets go too).
- ``<database>-writers``: an interactive writer holds it shared while it waits and
  writes; a bulk writer (a webhook batch) first makes sure nobody holds it (an exclusive
  try, released at once) and otherwise waits a millisecond at a time, at most
  ``max_wait`` seconds, so a click never waits behind more than the batch being written.

Where ``flock`` is missing (not POSIX) both are no-ops: SQLite's own locking still keeps
the data right, only slower to hand over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process ordering beyond SQLite's own
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


class _LockFile:
    """One lock file, opened on first use and closed with its owner."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._failed = False

    def fd(self) -> int | None:
        if self._fd is None and fcntl is not None and not self._failed:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._failed = True
                log.warning("cannot open lock file %s; no cross-process order", self.path)
                return None
            weakref.finalize(self, os.close, self._fd)
        return self._fd


class WriterPriority:
    """Clicks first: see the module docstring (``<database>-writers``)."""

    def __init__(self, path: str, *, max_wait: float = 0.25) -> None:
        self.path = path
        self.max_wait = max_wait
        self._file = _LockFile(path)

    async def interactive(self) -> None:
        """Announce an interactive writer (held shared until ``done``)."""
        fd = self._file.fd()
        if fd is None or fcntl is None:
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:  # a bulk writer is checking this instant
                await asyncio.sleep(0.0005)

    def done(self) -> None:
        fd = self._file.fd()
        if fd is not None and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def bulk_turn(self) -> None:
        """Wait (up to ``max_wait``) until no interactive writer of any process waits."""
        fd = self._file.fd()
        if fd is None or fcntl is None:
            return
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                await asyncio.sleep(0.001)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return


class WriteToken:
    """One writer of all processes at a time, handed over at once (``<database>-write``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = _LockFile(path)
        # one thread: inside a process one writer at a time waits here (``WriteLock``)
        self._waiter: ThreadPoolExecutor | None = None

    async def acquire(self) -> None:
        fd = self._file.fd()
        if fd is None or fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # another process writes: wait in our thread, woken by the kernel when it lets go
        if self._waiter is None:
            self._waiter = ThreadPoolExecutor(1, thread_name_prefix="claimdesk-write-token")
            weakref.finalize(self, self._waiter.shutdown, wait=False)
        taken = asyncio.get_running_loop().run_in_executor(
            self._waiter, fcntl.flock, fd, fcntl.LOCK_EX
        )
        try:
            await asyncio.shield(taken)
        except asyncio.CancelledError:
            taken.add_done_callback(self._give_back)  # the thread still takes it
            raise

    def _give_back(self, taken: asyncio.Future[None]) -> None:
        if not taken.cancelled() and taken.exception() is None:
            self.release()

    def release(self) -> None:
        fd = self._file.fd()
        if fd is not None and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


#: The write token of the transaction being written in this task: ``store.engine``'s
#: writer connection lets go of it in the database thread the moment the commit is done,
#: not once this process's event loop (busy with a burst) gets back to the transaction.
release_with_commit: contextvars.ContextVar[WriteToken | None] = contextvars.ContextVar(
    "claimdesk_release_with_commit", default=None
)


class ProcessLocks:
    """The two locks of one SQLite database file (``database``: its path)."""

    def __init__(self, database: str, *, max_wait: float = 0.25) -> None:
        self.priority = WriterPriority(f"{database}-writers", max_wait=max_wait)
        self.token = WriteToken(f"{database}-write")

    @contextlib.asynccontextmanager
    async def writing(self, *, bulk: bool) -> AsyncIterator[None]:
        """Around one write transaction of this process (its ``WriteLock`` held)."""
        announced = False
        if bulk:
            await self.priority.bulk_turn()
        else:
            await self.priority.interactive()
            announced = True
        try:
            await self.token.acquire()
            reset = release_with_commit.set(self.token)
            try:
                yield
            finally:
                release_with_commit.reset(reset)
                self.token.release()  # a no-op when the commit let go of it already
        finally:
            if announced:
                self.priority.done()
