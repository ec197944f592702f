"""Queues the platform side of a change: new cards, in-place updates, thread notes.

Called inside the use case's transaction, so the outbox rows commit with the
state change. Keys make each enqueue idempotent: one post per inquiry and
destination, one update per inquiry version and destination.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from store import outbox
from store.models import Inquiry, Lane


def _targets(ctx: AppContext, team_name: str) -> list[tuple[str, str]]:
    """Every (platform, destination) where ``team_name``'s cards go."""
    try:
        team = ctx.settings.team(team_name)
    except KeyError:
        return []
    return [
        (name, dest)
        for name, channel in ctx.channels.items()
        for dest in channel.destinations(team)
    ]


def post_key(channel: str, destination: str, inquiry_id: int) -> str:
    return f"card.post:{channel}:{destination}:{inquiry_id}"


def new_card_rows(
    ctx: AppContext, team: str, inquiry_id: int, now: datetime
) -> list[dict[str, Any]]:
    """The outbox rows of a new inquiry's cards, one per platform destination of ``team``
    (``outbox.enqueue_many``; a batch of new inquiries queues all of theirs at once)."""
    return [
        outbox.row_values(
            key=post_key(name, dest, inquiry_id),
            channel=name,
            kind="card.post",
            destination=dest,
            inquiry_id=inquiry_id,
            now=now,
            lane=Lane.BULK,
        )
        for name, dest in _targets(ctx, team)
    ]


async def queue_new_cards(session: AsyncSession, ctx: AppContext, inquiry: Inquiry) -> None:
    assert inquiry.id is not None
    await outbox.enqueue_many(session, new_card_rows(ctx, inquiry.team, inquiry.id, ctx.clock()))


async def queue_card_updates(
    session: AsyncSession, ctx: AppContext, inquiry: Inquiry, *, lane: Lane, note: str = ""
) -> None:
    """Re-render the inquiry's cards everywhere; ``note`` also goes into each card's thread."""
    assert inquiry.id is not None
    now = ctx.clock()
    for channel, dest in _targets(ctx, inquiry.team):
        await outbox.enqueue(
            session,
            key=f"card.update:{channel}:{dest}:{inquiry.id}:v{inquiry.version}",
            channel=channel,
            kind="card.update",
            destination=dest,
            inquiry_id=inquiry.id,
            now=now,
            lane=lane,
            payload={"version": inquiry.version},
        )
        if note:
            await outbox.enqueue(
                session,
                key=f"thread.post:{channel}:{dest}:{inquiry.id}:v{inquiry.version}",
                channel=channel,
                kind="thread.post",
                destination=dest,
                inquiry_id=inquiry.id,
                now=now,
                lane=lane,
                payload={"text": note},
            )
