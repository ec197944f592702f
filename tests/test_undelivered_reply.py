"""A reply the customer never got puts the inquiry back to work: its status returns to the
one before the reply and a reply deadline runs again, so nudges and escalations resume
(before, the inquiry stayed "replied" and the clock left it alone)."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot.usecases.card_actions import perform
from bot.usecases.replies import send_reply
from cards.actions import Action, Verb
from store.engine import transaction
from store.models import Event, Inquiry, Message
from tests.test_intake_hygiene import channel, form


async def _break_reply(service: Any, number: int, index: int = 0) -> None:
    """Give the ``index``-th reply of ``number`` a recipient no email can be built for (as an
    older version could have queued): its delivery fails for good on the first attempt."""
    async with transaction(service.ctx.sessions) as session:
        replies = (
            await session.exec(
                select(Message)
                .where(col(Message.inquiry_id) == number, col(Message.direction) == "out")
                .order_by(col(Message.id))
            )
        ).all()
        replies[index].to_address = "li\r\n@buyer.cn"
        session.add(replies[index])


async def _inquiry(service: Any, number: int) -> Inquiry:
    async with transaction(service.ctx.readers) as session:
        found = await session.get(Inquiry, number)
        assert found is not None
        return found


async def _reply(service: Any, number: int, body: str) -> None:
    outcome = await send_reply(
        service.ctx,
        inquiry_id=number,
        platform="web",
        user="alice",
        subject="Re: Quote request",
        body=body,
    )
    assert outcome.ok, outcome.message


async def _claimed(
    sqlite_url: str, make_settings: Any, service_factory: Any, key: str
) -> tuple[Any, int]:
    """A service and an inquiry Alice has claimed."""
    service = await service_factory(make_settings(sqlite_url), channels={"memory": channel()})
    number = (await service.intake(form("li@buyer.cn", "Li", key=key))).inquiry_id
    assert (await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    return service, number


async def test_an_undelivered_reply_returns_the_inquiry_to_claimed_with_a_deadline(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    service, number = await _claimed(sqlite_url, make_settings, service_factory, "undelivered")
    await _reply(service, number, "Here is our quotation.")
    assert (await _inquiry(service, number)).status == "replied"
    await _break_reply(service, number)
    failed_at = service.ctx.clock()
    await service.worker.drain()

    assert smtp.messages == []
    inquiry = await _inquiry(service, number)
    assert inquiry.status == "claimed"
    assert inquiry.reply_due_at is not None and inquiry.next_due_at == inquiry.reply_due_at
    assert inquiry.reply_due_at >= failed_at  # counted from the customer's message, not past
    async with transaction(service.ctx.readers) as session:
        failed = (
            await session.exec(
                select(Event).where(
                    col(Event.inquiry_id) == number, col(Event.kind) == "delivery_failed"
                )
            )
        ).one()
    assert (failed.before, failed.after) == ("replied", "claimed")
    assert "recipient address" in failed.data["error"]
    # the rep who wrote it is told directly, once
    told = service.ctx.channels["memory"].posted("send_direct")
    assert [(c.destination, c.text.split(":")[0]) for c in told] == [
        ("alice", f"Your reply to #{number} was not sent")
    ]

    # and the rep can answer again, which goes out
    await _reply(service, number, "Our quotation, again.")
    await service.worker.drain()
    assert len(smtp.messages) == 1
    assert (await _inquiry(service, number)).status == "replied"


async def test_a_failed_earlier_reply_leaves_a_later_answer_alone(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    service, number = await _claimed(sqlite_url, make_settings, service_factory, "two-replies")
    await _reply(service, number, "First answer.")
    await _reply(service, number, "Second answer.")
    await _break_reply(service, number, index=0)
    await service.worker.drain()
    assert len(smtp.messages) == 1  # the second went out
    inquiry = await _inquiry(service, number)
    assert inquiry.status == "replied"
    assert inquiry.reply_due_at is None
