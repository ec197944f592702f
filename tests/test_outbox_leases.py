"""Outbox leases between processes: a dead worker's leases are taken back as soon as its
heartbeat is stale (not when its lease runs out), a live worker's leases are renewed while
it works (a slow send is never taken over and sent twice), and each worker leases only a
few rows per destination."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.runtime.outbox_worker import WorkerSettings
from store import outbox
from store.engine import transaction
from store.models import Lane
from tests.conftest import need
from tests.support.postgres import PostgresServer
from tests.test_outbox import channel, form
from tests.test_slack_events import eventually

LIVE = WorkerSettings(
    lease_seconds=1.0,
    poll_seconds=0.05,
    base_backoff=0.05,
    max_backoff=0.3,
    heartbeat_seconds=0.2,
    dead_after_seconds=1.0,
)


async def _run(service: Any) -> asyncio.Task[None]:
    return asyncio.create_task(service.worker.run())


async def _stop(service: Any, task: asyncio.Task[None]) -> None:
    service.worker.stop()
    await asyncio.wait_for(task, 30)


async def test_dead_workers_leases_are_taken_back_by_a_live_worker(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    settings = make_settings(db_url)
    setup = await service_factory(settings, channels={"memory": channel()})
    numbers = [(await setup.intake(form(n))).inquiry_id for n in range(8)]
    now = setup.ctx.clock()
    async with transaction(setup.ctx.sessions) as session:  # a worker beat, leased, then died
        await outbox.heartbeat(session, owner="crashed", now=now, lease_for=timedelta(seconds=120))
        taken = await outbox.lease(
            session,
            lane=Lane.BULK,
            owner="crashed",
            now=now,
            lease_for=timedelta(seconds=120),
            limit=50,
            fifo=True,
            per_destination=3,
        )
    assert len(taken) == 3  # a few per destination, not the whole queue

    chat = channel()
    live = await service_factory(settings, channels={"memory": chat}, worker=LIVE)  # own engine
    task = await _run(live)
    try:
        # The crashed worker's leases run 120 s; its heartbeat is stale after 1 s.
        await eventually(lambda: len(chat.posted()) == 8, within=20, what="the channel's cards")
    finally:
        await _stop(live, task)
    assert [int(c.card.key) for c in chat.posted() if c.card] == numbers  # once each, in order


@pytest.fixture
def pg_url(postgres: PostgresServer | None) -> str:
    """Several live processes share a store only on PostgreSQL (a SQLite start takes every
    lease back: one process owns the file)."""
    need(postgres is not None, "PostgreSQL server binaries not installed")
    assert postgres is not None
    return postgres.new_database()


async def test_a_slow_send_keeps_its_lease_and_is_not_sent_twice(
    pg_url: str, make_settings: Any, service_factory: Any
) -> None:
    settings = make_settings(pg_url)
    slow = channel(delay=1.5)  # each post takes longer than the 1 s lease
    fast = channel()
    a = await service_factory(settings, channels={"memory": slow}, worker=LIVE)
    numbers = [(await a.intake(form(n))).inquiry_id for n in range(3)]
    a_task = await _run(a)
    await eventually(lambda: a.worker._lanes[Lane.BULK].tasks, within=10, what="worker a sending")
    b = await service_factory(settings, channels={"memory": fast}, worker=LIVE)
    b_task = await _run(b)
    try:
        await eventually(
            lambda: len(slow.posted()) + len(fast.posted()) >= 3, within=30, what="three cards"
        )
        await asyncio.wait_for(_wait_settled(a), 30)
    finally:
        await _stop(b, b_task)
        await _stop(a, a_task)
    keys = [int(c.card.key) for c in slow.posted() + fast.posted() if c.card]
    assert sorted(keys) == numbers  # each exactly once: a's renewed leases were never taken


async def _wait_settled(service: Any) -> None:
    while True:
        async with transaction(service.ctx.sessions) as session:
            if not await outbox.pending_counts(session):
                return
        await asyncio.sleep(0.1)
