"""The application side of the web inbox: ``InboxBackend`` over the store and use cases.

Clicks and replies go through the shared ``bot.interfaces.interactions.AppInteractions``, like every
chat platform's."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from sqlmodel import col, select

from bot.context import AppContext
from bot.interfaces.interactions import AppInteractions
from bot.runtime.live_feed import LiveFeed
from bot.usecases import presence
from bot.usecases.replies import ReplyTemplates, draft_reply
from bot.usecases.timeline import describe_event
from bot.usecases.views import card_clock, card_for, cards_for
from cards.actions import Action, ActionOutcome, Verb, encode_action
from cards.model import Card, Option, Select
from cards.reply_form import ReplyDraft
from cards.strings import text, zoned_time
from connectors.web.channel import ChannelItem, ChannelPage, ChannelQuery
from connectors.web.inbox import (
    AttachmentFile,
    AttachmentLink,
    HeldInquiry,
    InquiryDetail,
    MessageEntry,
    TeamInfo,
    TimelineEntry,
)
from store import inquiries as repo
from store import search
from store.engine import transaction
from store.lifecycle import OPEN_STATUSES
from store.models import AttachmentBlob, Inquiry, Message


def _delivery_words(message: Message, locale: str) -> str:
    """Where an outbound reply stands, in the rep's words (empty for inbound mail)."""
    if message.direction != "out" or not message.delivery:
        return ""
    state, _, words = message.delivery.partition(":")
    if state == "queued":
        return text(locale, "web.delivery.sending")
    if state == "sent":
        return text(locale, "web.delivery.sent")
    if state == "retrying":
        return text(locale, "web.delivery.retrying", error=words.strip())
    if state == "failed":
        return text(locale, "web.delivery.failed", error=words.strip())
    return message.delivery


class WebInboxBackend:
    """Implements ``connectors.web.inbox.InboxBackend``."""

    def __init__(
        self,
        ctx: AppContext,
        feed: LiveFeed,
        templates: ReplyTemplates,
        interactions: AppInteractions,
    ) -> None:
        self.ctx = ctx
        self.feed = feed
        self.templates = templates
        self.interactions = interactions

    def rep_name(self, rep_id: str) -> str:
        return self.ctx.rep_name(rep_id)

    def teams_of(self, rep_id: str) -> list[TeamInfo]:
        return [
            TeamInfo(t.name, t.title, t.locale)
            for t in self.ctx.settings.teams
            if rep_id in t.rep_ids()
        ]

    def now(self) -> datetime:
        return self.ctx.clock()

    def _filter(self, team: str, rep_id: str, query: ChannelQuery) -> search.ListFilter:
        owner = {"": "", "mine": rep_id, "none": "-"}.get(query.owner, query.owner)
        return search.ListFilter(
            team=team,
            statuses=query.statuses,
            owner=owner,
            priority=query.priority,
            country=query.country,
            language=query.language,
            source=query.source,
            q=query.q,
            sort=query.effective_sort,
        )

    async def channel_page(
        self, team: str, rep_id: str, query: ChannelQuery, page_size: int
    ) -> ChannelPage:
        wanted = self._filter(team, rep_id, query)
        settings = next((t for t in self.ctx.settings.teams if t.name == team), None)
        owners = tuple((r, self.ctx.rep_name(r)) for r in (settings.rep_ids() if settings else []))
        async with transaction(self.ctx.readers) as session:
            found = await search.list_page(
                session, wanted, offset=(query.page - 1) * page_size, limit=page_size
            )
            cards = await cards_for(self.ctx, session, found.rows)
            items = [
                ChannelItem(card, card_clock(row))
                for card, row in zip(cards, found.rows, strict=True)
            ]
            counts = await search.status_counts(session, wanted)
            facets = await search.facet_values(session, team)
        return ChannelPage(
            items=tuple(items),
            total=found.total,
            page=query.page,
            page_size=page_size,
            counts=counts,
            facets={k: tuple(v) for k, v in facets.items()},
            owners=owners,
        )

    async def channel_counts(self, team: str, rep_id: str, query: ChannelQuery) -> dict[str, int]:
        """The channel page's per-status counts (its other filters apply), for the live stream."""
        async with transaction(self.ctx.readers) as session:
            return await search.status_counts(session, self._filter(team, rep_id, query))

    async def channel_matches(
        self, team: str, rep_id: str, query: ChannelQuery, inquiry_id: int
    ) -> bool:
        async with transaction(self.ctx.readers) as session:
            return await search.matches(session, self._filter(team, rep_id, query), inquiry_id)

    async def inquiry_detail(self, inquiry_id: int) -> InquiryDetail | None:
        async with transaction(self.ctx.readers) as session:
            try:
                inquiry = await repo.get_inquiry(session, inquiry_id)
            except repo.NotFound:
                return None
            card = await card_for(self.ctx, session, inquiry)
            events = await repo.timeline(session, inquiry_id)
            messages = await repo.messages(session, inquiry_id)
        locale = self.ctx.locale(inquiry.team)
        zone = self._zone(inquiry.team)
        return InquiryDetail(
            team=inquiry.team,
            card=card,
            timeline=tuple(
                TimelineEntry(
                    e.at,
                    self.ctx.rep_name(e.actor) if self.ctx.settings.rep(e.actor) else e.actor,
                    describe_event(e, locale, self.ctx.rep_name, zone),
                    when=zoned_time(e.at, zone),
                )
                for e in events
            ),
            messages=tuple(
                MessageEntry(
                    at=m.created_at,
                    direction=m.direction,
                    sender=(self.ctx.rep_name(m.author) if m.author else "")
                    or (f"{m.from_name} <{m.from_address}>" if m.from_name else m.from_address),
                    subject=m.subject,
                    text=m.text,
                    delivery=_delivery_words(m, locale),
                    attachments=tuple(
                        AttachmentLink(
                            str(a.get("filename", "")), int(a.get("size", 0)), a.get("blob")
                        )
                        for a in m.attachments
                        if not a.get("inline")
                    ),
                    when=zoned_time(m.created_at, zone),
                    delivery_state=m.delivery.partition(":")[0] if m.direction == "out" else "",
                )
                for m in messages
            ),
        )

    def _zone(self, team: str) -> str:
        try:
            return self.ctx.settings.team(team).timezone
        except KeyError:
            return "UTC"

    def leads_teams(self, rep_id: str) -> list[TeamInfo]:
        return [
            TeamInfo(t.name, t.title, t.locale)
            for t in self.ctx.settings.teams
            if rep_id in t.leads or rep_id in t.managers
        ]

    async def escalated_cards(self, rep_id: str) -> list[Card]:
        """Open inquiries escalated in the teams ``rep_id`` leads or manages (still unclaimed
        or unanswered), oldest first, each with a Reassign menu of the team's reps."""
        return await self._escalated(rep_id)

    async def escalated_card(self, rep_id: str, inquiry_id: int) -> Card | None:
        """The card of ``inquiry_id`` as the escalated view shows it, ``None`` when it does not
        belong there (not escalated, answered, closed, or not a team of ``rep_id``'s)."""
        found = await self._escalated(rep_id, inquiry_id)
        return found[0] if found else None

    async def _escalated(self, rep_id: str, inquiry_id: int | None = None) -> list[Card]:
        teams = [t.name for t in self.leads_teams(rep_id)]
        if not teams:
            return []
        stmt = select(Inquiry).where(
            col(Inquiry.team).in_(teams),
            col(Inquiry.escalation_level) > 0,
            col(Inquiry.status).in_([s.value for s in OPEN_STATUSES]),
            col(Inquiry.first_reply_at).is_(None),
        )
        if inquiry_id is not None:
            stmt = stmt.where(col(Inquiry.id) == inquiry_id)
        async with transaction(self.ctx.readers) as session:
            rows = (await session.exec(stmt.order_by(col(Inquiry.received_at)).limit(200))).all()
            cards = await cards_for(self.ctx, session, rows)
        return [self._with_reassign(card, row) for card, row in zip(cards, rows, strict=True)]

    def _with_reassign(self, card: Card, inquiry: Inquiry) -> Card:
        team = self.ctx.settings.team(inquiry.team)
        choices = tuple(
            Option(self.ctx.rep_name(r), r) for r in team.rep_ids() if r != inquiry.assignee
        )
        assert inquiry.id is not None
        menu = Select(
            text(team.locale, "select.reassign"),
            encode_action(Verb.REASSIGN, inquiry.id),
            choices,
        )
        return replace(card, actions=(*card.actions, menu))

    async def claimed_items(self, rep_id: str) -> list[HeldInquiry]:
        return [
            HeldInquiry(i.number, i.subject) for i in await presence.claimed_items(self.ctx, rep_id)
        ]

    async def away_since(self, rep_id: str) -> datetime | None:
        return await presence.away_since(self.ctx, rep_id)

    async def handed_over(self, rep_id: str, since: datetime) -> list[HeldInquiry]:
        return [
            HeldInquiry(i.number, i.subject, self.ctx.rep_name(i.holder) if i.holder else "")
            for i in await presence.handed_over(self.ctx, rep_id, since)
        ]

    async def take_back(self, rep_id: str, numbers: list[int], since: datetime) -> int:
        return await presence.take_back(self.ctx, rep_id, numbers, since)

    async def act(self, action: Action) -> ActionOutcome:
        return await self.interactions.act(action)

    async def reply_draft(self, inquiry_id: int, rep_id: str, template: str) -> ReplyDraft:
        return await draft_reply(self.ctx, self.templates, inquiry_id, rep_id, template)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, subject: str, body: str, template: str
    ) -> ActionOutcome:
        return await self.interactions.send_reply(
            inquiry_id, rep_id, subject=subject, body=body, template=template
        )

    async def attachment(self, blob_id: int) -> AttachmentFile | None:
        async with transaction(self.ctx.readers) as session:
            blob = await session.get(AttachmentBlob, blob_id)
            if blob is None:
                return None
            message = await session.get(Message, blob.message_id)
            inquiry = await session.get(Inquiry, message.inquiry_id) if message else None
        if inquiry is None:
            return None
        return AttachmentFile(inquiry.team, blob.filename, blob.content_type, blob.data)

    async def is_away(self, rep_id: str) -> bool:
        return await presence.is_away(self.ctx, rep_id)

    async def set_away(self, rep_id: str, away: bool) -> None:
        await presence.set_away(self.ctx, rep_id, away)

    def subscribe(self, team: str) -> asyncio.Queue[ChannelItem]:
        return self.feed.subscribe(team)

    def unsubscribe(self, team: str, queue: asyncio.Queue[ChannelItem]) -> None:
        self.feed.unsubscribe(team, queue)
