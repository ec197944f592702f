"""The card that goes with a clock DM: an escalation carries Claim / Reassign (``bot.runtime.deliveries``)."""

from __future__ import annotations

from bot.context import AppContext
from bot.runtime.clock.people import on_duty
from bot.usecases.presence import away_reps
from bot.usecases.views import inquiry_view
from cards.escalation_card import build_escalation_card
from cards.model import Card, Option
from store import inquiries as repo
from store.engine import transaction
from store.models import Contact, Outbox


async def direct_card(ctx: AppContext, row: Outbox) -> Card | None:
    """The card that goes with a clock DM (escalations carry Claim / Reassign), as of now."""
    if row.payload.get("card") != "escalation" or row.inquiry_id is None:
        return None
    async with transaction(ctx.readers) as session:
        try:
            inquiry = await repo.get_inquiry(session, row.inquiry_id)
        except repo.NotFound:
            return None
        contact = await session.get(Contact, inquiry.contact_id)
        away = await away_reps(ctx, session)
    try:
        team = ctx.settings.team(inquiry.team)
    except KeyError:
        return None
    members = tuple(Option(ctx.rep_name(r.id), r.id) for r in on_duty(ctx, team, away))
    return build_escalation_card(
        inquiry_view(ctx, inquiry, contact),
        now=ctx.clock(),
        locale=team.locale,
        headline=str(row.payload.get("text", "")),
        members=members,
    )
