"""Due inquiries are handled in chunks, one transaction per chunk (on PostgreSQL two at once):
an inquiry whose step fails rolls back alone (its chunk is redone one inquiry per transaction),
keeps nothing half done and is done at the next tick; every other inquiry gets its step once."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from sqlmodel import col, select

from bot.app import Service
from bot.runtime.clock.context import StepContext
from bot.runtime.clock.steps import STEPS
from store import inquiries as repo
from store.models import Event, JobRun
from tests.conftest import MovableClock
from tests.support.clock import berlin, clock_config, new_inquiry, recording_channel


async def _nudged(service: Service) -> Counter[int]:
    async with service.ctx.sessions() as session:
        rows = await session.exec(select(Event.inquiry_id).where(col(Event.kind) == "nudged"))
        return Counter(rows.all())


@pytest.mark.parametrize("parallel", [1, 3], ids=["one-chunk-at-a-time", "three-in-flight"])
async def test_a_failing_inquiry_rolls_back_alone(
    db_url: str,
    make_settings: Any,
    service_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    parallel: int,
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # a Tuesday morning
    channel = recording_channel()
    service = await service_factory(
        make_settings(db_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    service.scheduler.settings.chunk = 2  # chunks of 2, 2 and 1
    service.scheduler.settings.parallel = parallel  # the failing chunk redone beside the others
    numbers = [await new_inquiry(service, f"chunk-{i}") for i in range(5)]
    await service.worker.drain()
    bad = numbers[2]
    nudge = STEPS["nudge"]

    def failing(step: StepContext) -> None:
        nudge(step)  # its rows are made, then the step fails
        if step.inquiry.id == bad:
            raise RuntimeError("boom")

    monkeypatch.setitem(STEPS, "nudge", failing)
    clock.now = berlin(2026, 11, 24, 10, 16)  # claim was due 10:15: the first nudge
    with caplog.at_level(logging.INFO, logger="bot.runtime.clock"):
        report = await service.scheduler.tick()
    assert report.due == 5
    assert report.kinds == {"nudge": 4}
    assert [r.inquiry for r in caplog.records if r.getMessage() == "clock step failed"] == [bad]  # type: ignore[attr-defined]
    assert await _nudged(service) == {n: 1 for n in numbers if n != bad}
    async with service.ctx.sessions() as session:
        runs = (await session.exec(select(JobRun.key).where(col(JobRun.key).like("nudge:%")))).all()
        failed = await repo.get_inquiry(session, bad)
    assert sorted(k.split(":")[1] for k in runs) == sorted(str(n) for n in numbers if n != bad)
    assert failed.next_due_at is not None and failed.next_due_at <= clock.now  # still due

    monkeypatch.setitem(STEPS, "nudge", nudge)
    again = await service.scheduler.tick()
    assert again.kinds == {"nudge": 1}
    assert await _nudged(service) == {n: 1 for n in numbers}
    assert (await service.scheduler.tick()).steps == 0
    await service.worker.drain()
    said = Counter(
        c.text.split()[0]
        for c in channel.calls
        if c.method == "post_thread" and "waiting to be claimed" in c.text
    )
    assert said == {f"#{n}": 1 for n in numbers}


async def test_a_chunk_stores_every_compare_and_set_together(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    """The chunk's compare-and-sets go out in one statement per set of columns: a group whose
    new values are all NULL (the team is gone from the config) is stored too, and each row
    keeps what it was given."""
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(
        make_settings(db_url, **clock_config()),
        channels={"slack": recording_channel()},
        clock=clock,
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    service.scheduler.settings.chunk = 2
    numbers = [await new_inquiry(service, f"cas-{i}") for i in range(4)]
    async with service.ctx.sessions() as session:
        for number in numbers[:2]:  # their team was removed from the config since
            inquiry = await repo.get_inquiry(session, number)
            # due first, so they make a chunk of their own: a column of nothing but NULLs
            await repo.change(session, inquiry, clock.now, team="gone", next_due_at=clock.now)
        await session.commit()
    clock.now = berlin(2026, 11, 24, 10, 16)
    report = await service.scheduler.tick()
    assert report.due == 4
    assert report.kinds == {"nudge": 2}
    async with service.ctx.sessions() as session:
        stored = {n: await repo.get_inquiry(session, n) for n in numbers}
    assert [stored[n].next_due_at for n in numbers[:2]] == [None, None]
    for n in numbers[2:]:  # nudged: the next nudge is due, 15 minutes on
        due = stored[n].next_due_at
        assert due is not None and due > clock.now
    assert await _nudged(service) == {n: 1 for n in numbers[2:]}
    assert (await service.scheduler.tick()).due == 0
