"""The one interaction backend: what every surface (web inbox, Slack, DingTalk, WeCom ...) asks.

Implements ``connectors.platform.Interactions`` once, over the use cases: act on
a card (de-duplicated on the platform's delivery id in ``job_run``, across
processes), find the rep behind a platform user (ids in the config via the
platform's ``user_id``, then identities remembered in the store), draft and
send a reply, and a signed link to the reply page. Authorization is
``card_actions.authorize``, the same for every path.

A click may bring a fresh single-use code for updating the clicked card
(WeCom's ``ResponseCode``: ``Action.extra["response_code"]`` with the card's
``task_id``). ``act`` stores it with the card (``CardRef.data["offered"]``) and
commits that *before* the click is applied, so the card update the click queues
— run by any process, or after a restart — finds it; a refused click (a late
claim) still hands over its code, which a shared transaction would roll back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from urllib.parse import quote

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.context import AppContext
from bot.usecases.card_actions import Refusal, authorize, perform
from bot.usecases.replies import ReplyTemplates, draft_reply, send_reply
from cards.actions import Action, ActionOutcome, Verb
from cards.reply_form import ReplyDraft
from cards.status_choices import with_listed_reason
from cards.strings import text
from connectors.platform import ChatPlatform, ReplyDraftView
from connectors.web.auth import Signer, login_link
from store import inquiries as repo
from store.engine import transaction
from store.models import CardRef, RepIdentity

log = logging.getLogger(__name__)


def draft_view(draft: ReplyDraft, locale: str = "en", notice: str = "") -> ReplyDraftView:
    """A draft as a platform's editor shows it (template choices as (key, label))."""
    return ReplyDraftView(
        inquiry_id=draft.inquiry_id,
        to=draft.to,
        subject=draft.subject,
        body=draft.body,
        template=draft.template,
        templates=tuple(
            (f"{t.language}/{t.name}", f"{t.title} ({t.language})") for t in draft.templates
        ),
        error=draft.error,
        notice=notice,
        locale=locale,
    )


class AppInteractions:
    """``Interactions`` for every surface, over one ``AppContext``."""

    def __init__(
        self,
        ctx: AppContext,
        templates: ReplyTemplates,
        signer: Signer,
        platforms: Mapping[str, ChatPlatform] | None = None,
    ) -> None:
        self.ctx = ctx
        self.templates = templates
        self.signer = signer
        # Read at call time: the composition root fills it after building the platforms.
        self.platforms: Mapping[str, ChatPlatform] = platforms if platforms is not None else {}

    # -- people --------------------------------------------------------------

    def configured_rep(self, platform: str, user: str) -> str | None:
        """The rep whose configured id on ``platform`` is ``user`` (no store lookup)."""
        if not user:
            return None
        chat = self.platforms.get(platform)
        for rep in self.ctx.settings.reps:
            known = chat.user_id(rep) if chat is not None else rep.platform_id(platform)
            if known and known == user:
                return rep.id
        return None

    async def rep_for(self, platform: str, user: str) -> str | None:
        """The rep id behind a platform user: configured id, else a remembered identity."""
        rep_id = self.configured_rep(platform, user)
        if rep_id is not None or not user or platform == "web":
            return rep_id
        async with transaction(self.ctx.readers) as session:
            known = await session.get(RepIdentity, (platform, user))
        if known is not None and self.ctx.settings.rep(known.rep_id) is not None:
            return known.rep_id
        return None

    async def remembered_user(self, platform: str, rep_id: str) -> str | None:
        """A platform user id remembered for ``rep_id`` (``None``: none yet)."""
        async with transaction(self.ctx.readers) as session:
            row = (
                await session.exec(
                    select(RepIdentity).where(
                        col(RepIdentity.platform) == platform, col(RepIdentity.rep_id) == rep_id
                    )
                )
            ).first()
        return row.platform_user_id if row is not None else None

    async def remember_identity(self, platform: str, user: str, rep_id: str) -> None:
        """Remember that ``user`` on ``platform`` is ``rep_id`` (e.g. matched by profile email)."""
        if self.ctx.settings.rep(rep_id) is None or not user:
            return
        try:
            async with transaction(self.ctx.sessions) as session:
                session.add(
                    RepIdentity(
                        platform=platform,
                        platform_user_id=user,
                        rep_id=rep_id,
                        created_at=self.ctx.clock(),
                    )
                )
        except IntegrityError:
            return  # remembered concurrently
        log.info("platform user mapped to rep", extra={"platform": platform, "rep": rep_id})

    # -- actions -------------------------------------------------------------

    async def act(self, action: Action) -> ActionOutcome:
        """Apply a click from any surface (see ``card_actions.perform``); a status chosen on a
        chat card may carry its listed lost reason (``cards.status_choices``)."""
        action = with_listed_reason(action)
        rep_id = await self.rep_for(action.platform, action.user)
        if action.verb == Verb.REASSIGN and action.value:
            target = await self.rep_for(action.platform, action.value)
            if target is not None:
                action = Action(
                    action.inquiry_id,
                    action.verb,
                    action.platform,
                    action.user,
                    value=target,
                    reason=action.reason,
                    request_id=action.request_id,
                    extra=action.extra,
                )
        code, task = action.extra.get("response_code", ""), action.extra.get("task_id", "")
        if code and task:
            await self.offer_card_code(action.platform, action.inquiry_id, task, code)
        return await perform(self.ctx, action, rep_id=rep_id)

    async def offer_card_code(self, platform: str, inquiry_id: int, ref: str, code: str) -> bool:
        """Keep ``code`` (a single-use card-update code a click brought) with the card whose
        ``ref`` is ``ref``, for whichever process updates the card next. ``False``: no such
        card (a stale copy, another inquiry's, or not posted by us)."""
        async with transaction(self.ctx.sessions) as session:
            stmt = select(CardRef).where(
                col(CardRef.inquiry_id) == inquiry_id,
                col(CardRef.platform) == platform,
                col(CardRef.ref) == ref,
            )
            if self.ctx.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update()  # two clicks at once: no lost append
            card = (await session.exec(stmt)).first()
            if card is None:
                return False
            offered = [list(o) for o in card.data.get("offered", [])]
            if any(o and o[0] == code for o in offered):
                return True  # a redelivered callback
            # Wall-clock seconds: the code's 72 h lifetime runs in real time.
            offered.append([code, time.time(), ref])
            card.data = {**card.data, "offered": offered[-50:]}
            card.updated_at = self.ctx.clock()
            session.add(card)
        return True

    # -- replies -------------------------------------------------------------

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        """A signed sign-in link that lands on the inquiry's reply page."""
        link = login_link(self.signer, self.ctx.settings.server.base_url, rep_id)
        return f"{link}&next={quote(f'/web/inquiries/{inquiry_id}/reply', safe='/')}"

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        """The editor's content, or the refusal ``send_reply`` would give (same check)."""
        locale = "en"
        try:
            async with transaction(self.ctx.readers) as session:
                try:
                    inquiry = await repo.get_inquiry(session, inquiry_id)
                except repo.NotFound:
                    raise Refusal(
                        "not_found", text(locale, "refuse.not_found", number=inquiry_id)
                    ) from None
            locale = self.ctx.locale(inquiry.team)
            authorize(
                self.ctx,
                inquiry.team,
                rep_id if self.ctx.settings.rep(rep_id) else None,
                locale,
                assignee=inquiry.assignee,
                owner_only=True,
            )
        except Refusal as refusal:
            return ActionOutcome(False, refusal.message, inquiry_id, refusal.code)
        draft = await draft_reply(self.ctx, self.templates, inquiry_id, rep_id, template)
        return draft_view(draft, locale, draft.notice)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        """Queue the reply email as ``rep_id`` (``replies.send_reply``, same check as ``act``)."""
        return await send_reply(
            self.ctx,
            inquiry_id=inquiry_id,
            platform="web",
            user=rep_id,
            subject=subject,
            body=body,
            template=template,
            rep_id=rep_id if self.ctx.settings.rep(rep_id) else None,
        )
