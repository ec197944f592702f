"""A thread note that found its card not posted yet goes out as soon as the post is done
(not a retry interval later): the post's completion wakes it, in the same drain."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import select

from bot.usecases.card_actions import perform
from cards.actions import Action, Verb
from store import outbox
from store.engine import transaction
from store.models import Lane, Outbox
from tests.conftest import MovableClock
from tests.support.clock import berlin, clock_config, new_inquiry, recording_channel


async def test_a_note_put_back_for_its_card_follows_the_post_in_the_same_drain(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # frozen: only a wake-up makes it due
    channel = recording_channel()
    service = await service_factory(
        make_settings(sqlite_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    number = await new_inquiry(service, "tn-1")  # its card post waits in the bulk lane
    assert (await perform(service.ctx, Action(number, Verb.SNOOZE, "web", "alice", value="1h"))).ok
    worker = service.worker
    # only the interactive lane runs first: the snooze note finds no card and is put back
    await worker._lease_and_start(Lane.INTERACTIVE)
    await asyncio.gather(*worker._lanes[Lane.INTERACTIVE].tasks)
    async with transaction(service.ctx.readers) as session:
        notes = (await session.exec(select(Outbox).where(Outbox.kind == "thread.post"))).all()
    assert [n.last_error for n in notes] == [outbox.WAITING_FOR_POST]
    assert notes[0].next_attempt_at > clock()
    assert [c.method for c in channel.calls] == []

    await worker.drain()
    assert [c.method for c in channel.calls if c.method != "update_card"] == [
        "post_card",
        "post_thread",
    ]
    note = next(c for c in channel.calls if c.method == "post_thread")
    assert "snoozed" in note.text
