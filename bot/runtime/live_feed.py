"""Live card changes for the web inbox: whatever changed, pushed to each team's open pages.

The feed reads the database (``updated_at`` with a small overlap, de-duplicated
by version), not an in-process event bus, so a change made by another
claimdesk process on the same PostgreSQL reaches this process's browsers too.
A local change wakes the feed at once; otherwise it polls every second.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.views import card_clock, cards_for
from connectors.web.channel import ChannelItem
from store import inquiries as repo
from store.engine import transaction

log = logging.getLogger(__name__)

_OVERLAP = timedelta(seconds=3)
#: The overlap of a look woken by a local commit: every change read again on each of up to
#: 20 looks a second under a burst was most of the feed's cost (3 s of intake each time).
_WAKE_OVERLAP = timedelta(milliseconds=250)
_MIN_GAP = 0.05


class LiveFeed:
    """Fans card changes out to subscriber queues, per team (each with its clock)."""

    def __init__(
        self, ctx: AppContext, poll_seconds: float = 1.0, min_gap: float = _MIN_GAP
    ) -> None:
        self.ctx = ctx
        self.poll_seconds = poll_seconds
        self.min_gap = min_gap
        self._subscribers: dict[str, set[asyncio.Queue[ChannelItem]]] = {}
        self._shown: dict[int, int] = {}
        self._watermark: datetime | None = None
        self._stop = asyncio.Event()

    def subscribe(self, team: str) -> asyncio.Queue[ChannelItem]:
        queue: asyncio.Queue[ChannelItem] = asyncio.Queue(maxsize=1000)
        self._subscribers.setdefault(team, set()).add(queue)
        self.ctx.metrics.live_clients.inc()
        return queue

    def unsubscribe(self, team: str, queue: asyncio.Queue[ChannelItem]) -> None:
        if queue in self._subscribers.get(team, set()):
            self._subscribers[team].discard(queue)
            self.ctx.metrics.live_clients.dec()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        wake = self.ctx.changed.subscribe()
        acted = self.ctx.acted.subscribe()
        woken = False
        try:
            while not self._stop.is_set():
                wake.clear()
                acted.clear()
                try:
                    # Woken by a change just committed: it and any change committed since
                    # the last look are recent. The periodic look keeps the full overlap for
                    # a change that committed long after it was stamped (another process's,
                    # or one that waited for the write lock).
                    await self.poll(overlap=_WAKE_OVERLAP if woken else _OVERLAP)
                except Exception:
                    log.exception("live feed poll failed")
                # A burst of changes is coalesced into one look, but a person's action (a
                # claim, a reply) committed meanwhile is looked for at once: at most one
                # more look per click, and the others on the page see it a gap sooner.
                if not acted.is_set():
                    await self._until(acted, self.min_gap)
                await self._until(wake, self.poll_seconds)
                woken = wake.is_set()
        finally:
            self.ctx.changed.unsubscribe(wake)
            self.ctx.acted.unsubscribe(acted)

    async def _until(self, event: asyncio.Event, seconds: float) -> None:
        """Wait for ``event``, the feed's stop or ``seconds``, whichever comes first."""
        waiter = asyncio.ensure_future(event.wait())
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait(
                {waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            stopper.cancel()

    async def poll(self, *, overlap: timedelta = _OVERLAP) -> int:
        """Push every card changed since the last poll; returns how many were pushed.

        The scan reads only (id, version, team, updated_at); a full inquiry is loaded
        and rendered only for a new version that some open page is watching, so a
        burst of intake costs the feed a narrow index read, not a card per row.
        """
        if not any(self._subscribers.values()):
            # no page open: nothing to push, nothing to read; an opening page renders
            # what is there, and the feed takes up from then on (with the full overlap)
            self._watermark = None
            return 0
        since = self._watermark - overlap if self._watermark else self.ctx.clock() - _OVERLAP
        changed: list[int] = []  # cards an open page was sent before (a claim, a reply)
        arrived: list[int] = []  # cards it has not been sent yet
        async with transaction(self.ctx.readers) as session:
            changes = await repo.changed_since(session, since, limit=2000)
            for number, version, team, updated_at in changes:
                if self._watermark is None or updated_at > self._watermark:
                    self._watermark = updated_at
                sent_before = number in self._shown
                if self._shown.get(number, 0) >= version:
                    continue
                self._shown[number] = version
                if self._subscribers.get(team):
                    (changed if sent_before else arrived).append(number)
            # A change to a card on the page goes out before a burst's new cards: a claim
            # is not rendered and queued behind seventy arrivals. Each group is read and
            # rendered together: a few statements per look, not five per card (each a
            # turn of the busy event loop).
            pushed = 0
            for numbers in (changed, arrived):
                pushed += await self._push(session, numbers)
        if self._watermark is None:
            self._watermark = since + _OVERLAP
        if len(self._shown) > 50_000:
            self._shown.clear()
        return pushed

    async def _push(self, session: AsyncSession, numbers: list[int]) -> int:
        """Read and render the cards of ``numbers`` and queue them for their teams' pages."""
        if not numbers:
            return 0
        found = await repo.inquiries_by_id(session, numbers)
        rows = [found[number] for number in numbers if number in found]
        for inquiry, card in zip(rows, await cards_for(self.ctx, session, rows), strict=True):
            item = ChannelItem(card, card_clock(inquiry))
            for queue in list(self._subscribers.get(inquiry.team, ())):
                if queue.full():  # a stalled browser: drop it, it reloads on reconnect
                    self.unsubscribe(inquiry.team, queue)
                    continue
                queue.put_nowait(item)
        return len(rows)
