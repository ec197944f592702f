"""Retention: old bookkeeping rows go in batches, young rows, open work and live clock keys
stay, one process per hour does it, and a webhook retry within 24 h is still deduped."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from bot.app import Service
from bot.runtime.retention import Retention, hour_key
from config.loading import ConfigError, settings_from_mapping
from store.engine import transaction
from store.models import Inquiry, JobRun, Outbox, OutboxState, WebhookKey, WorkerHeartbeat
from tests.conftest import MovableClock, base_config
from tests.test_flow_end_to_end import post_webhook

DAY = timedelta(days=1)
FORM = {"email": "ana@buyer.example", "name": "Ana", "subject": "Quote", "message": "10 pcs?"}


def outbox_row(key: str, state: OutboxState, at: datetime) -> Outbox:
    return Outbox(
        key=key,
        channel="memory",
        kind="dm",
        state=state.value,
        next_attempt_at=at,
        created_at=at,
        done_at=at,  # even with a done_at, only the state says a row is done
    )


async def keys_of(service: Service, model: Any, column: Any) -> set[str]:
    async with service.ctx.sessions() as session:
        return {str(v) for v in (await session.exec(select(column))).all()}


async def seed(service: Service, now: datetime) -> None:
    old, young = now - 31 * DAY, now - 29 * DAY
    async with transaction(service.ctx.sessions) as session:
        session.add(outbox_row("done-old", OutboxState.DONE, old))
        session.add(outbox_row("done-young", OutboxState.DONE, young))
        session.add(outbox_row("pending-old", OutboxState.PENDING, old))
        session.add(outbox_row("dead-old", OutboxState.DEAD, old))
        for key, at in (
            ("action:slack:old", old),
            ("action:slack:young", young),
            ("digest:sales:2026-01-01", old),
            ("someday:unknown", old),
        ):
            session.add(JobRun(key=key, owner="t", started_at=at, finished_at=at))
        session.add(
            WebhookKey(webhook="website", key="wk-old", body_sha256="0" * 64, created_at=old)
        )
        session.add(
            WebhookKey(webhook="website", key="wk-young", body_sha256="0" * 64, created_at=young)
        )
        session.add(WorkerHeartbeat(owner="w-old", last_seen=old))
        session.add(WorkerHeartbeat(owner="w-young", last_seen=young))


async def test_old_rows_go_young_rows_and_open_work_stay(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock()
    service = await service_factory(make_settings(db_url), clock=clock)
    await seed(service, clock.now)

    report = await Retention(service.ctx).run_once()

    assert report.ran
    assert (report.outbox, report.dedupe, report.webhook_keys, report.heartbeats) == (1, 1, 1, 1)
    assert await keys_of(service, Outbox, Outbox.key) == {"done-young", "pending-old", "dead-old"}
    runs = await keys_of(service, JobRun, JobRun.key)
    assert runs == {
        "action:slack:young",
        "digest:sales:2026-01-01",
        "someday:unknown",
        hour_key(clock.now),
    }
    assert await keys_of(service, WebhookKey, WebhookKey.key) == {"wk-young"}
    assert await keys_of(service, WorkerHeartbeat, WorkerHeartbeat.owner) == {"w-young"}


async def test_rows_go_in_bounded_batches_until_none_is_left(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock()
    service = await service_factory(make_settings(db_url), clock=clock)
    old = clock.now - 40 * DAY
    async with transaction(service.ctx.sessions) as session:
        for n in range(7):
            session.add(outbox_row(f"done-{n}", OutboxState.DONE, old))
            session.add(JobRun(key=f"action:web:{n}", owner="t", started_at=old))

    report = await Retention(service.ctx, batch=3).run_once()

    assert (report.outbox, report.dedupe) == (7, 7)
    assert await keys_of(service, Outbox, Outbox.key) == set()
    assert await keys_of(service, JobRun, JobRun.key) == {hour_key(clock.now)}


async def test_a_second_process_does_not_run_the_same_hour(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock()
    first = await service_factory(make_settings(db_url), clock=clock)
    second = await service_factory(make_settings(db_url), clock=clock)
    await seed(first, clock.now)

    one = await Retention(first.ctx).run_once()
    clock.advance(minutes=30)
    again = await Retention(second.ctx).run_once()

    assert one.ran and not again.ran
    assert again == type(again)()  # nothing deleted, nothing counted
    async with second.ctx.sessions() as session:
        claims = (
            await session.exec(select(func.count()).where(col(JobRun.key).startswith("retention:")))
        ).one()
    assert claims == 1

    clock.advance(hours=1)  # the next hour is the second process's to take
    assert (await Retention(second.ctx).run_once()).ran


async def test_a_webhook_retry_within_24h_is_still_deduped_after_a_run(
    db_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock()
    service = await service_factory(
        make_settings(db_url, store={"url": db_url, "keep_webhook_keys_days": 2}), clock=clock
    )
    http = await client_factory(service, background=False)
    first = await post_webhook(http, FORM, headers={"Idempotency-Key": "retry-1"})
    assert first.status == 202
    number = (await first.json())["inquiry"]

    clock.advance(hours=23)
    assert (await Retention(service.ctx).run_once()).ran
    retry = await post_webhook(http, FORM, headers={"Idempotency-Key": "retry-1"})
    assert retry.status == 202
    assert (await retry.json())["inquiry"] == number
    assert (await retry.json())["duplicate"] is True

    clock.advance(days=3)  # past the horizon the key goes; the inquiry (data) stays
    assert (await Retention(service.ctx).run_once()).webhook_keys == 1
    async with service.ctx.sessions() as session:
        assert await session.get(Inquiry, number) is not None


async def test_a_clock_key_goes_only_when_its_inquiry_cannot_plan_it_again(
    db_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock()
    service = await service_factory(make_settings(db_url), clock=clock)
    http = await client_factory(service, background=False)
    response = await post_webhook(http, FORM, headers={"Idempotency-Key": "clock-1"})
    number = (await response.json())["inquiry"]
    claim_due = clock.now - 60 * DAY
    async with transaction(service.ctx.sessions) as session:
        inquiry = await session.get(Inquiry, number)
        assert inquiry is not None
        inquiry.claim_due_at = claim_due
        session.add(inquiry)
        old = clock.now - 59 * DAY
        live = f"escalate:{number}:{int(claim_due.timestamp())}:claim:1"
        stale = f"escalate:{number}:{int((claim_due - DAY).timestamp())}:claim:1"
        gone = f"nudge:999999:{int(claim_due.timestamp())}:3"  # no such inquiry
        young = f"nudge:{number}:{int((claim_due - DAY).timestamp())}:1"
        for key, at in ((live, old), (stale, old), (gone, old), (young, clock.now - DAY)):
            session.add(JobRun(key=key, owner="clock", started_at=at, finished_at=at))

    report = await Retention(service.ctx, batch=1).run_once()

    assert report.clock == 2
    runs = await keys_of(service, JobRun, JobRun.key)
    assert {live, young} <= runs
    assert not {stale, gone} & runs


@pytest.mark.parametrize("key", ["keep_dedupe_days", "keep_webhook_keys_days"])
def test_dedupe_horizons_shorter_than_two_days_are_refused(key: str) -> None:
    data = base_config()
    data["store"] = {"url": "sqlite+aiosqlite:///:memory:", key: 1}
    with pytest.raises(ConfigError):
        settings_from_mapping(data, source="test.toml", env={})
    data["store"][key] = 2
    assert getattr(settings_from_mapping(data, source="test.toml", env={}).store, key) == 2
