"""Slack glue: Bolt listeners that turn clicks and modal submissions into use cases.

Every listener acks first (Slack wants an answer within 3 s) and does the work
after; the Reply button opens its modal with ``views.open`` right after the ack
(a ``trigger_id`` expires in 3 s) showing "Preparing…", then fills it in with
``views.update``. The modal's submission is the exception: it is answered
*with* the outcome, so a template problem is shown in place
(``response_action: errors``); ``send_reply`` is one short transaction.

Duplicates: a redelivered payload (Slack's ``X-Slack-Retry-Num``, Socket Mode
redelivery) carries the same ``action_ts``; its key is written to ``job_run``
(unique), so only the first delivery acts, across processes too. A human
double click is two payloads with different ``action_ts``: the same
(message, action, value, user) within ``double_click_seconds`` is dropped in
process. The claim itself is atomic, so a second claim can never win twice.

People: a Slack user is a rep by ``[[reps]] slack_id``, else by a remembered
``RepIdentity``, else by the email of their Slack profile (``users.info``),
which is then remembered. The other way round (whom to DM) uses
``users.lookupByEmail``. A user resolved through the store is handed to
``card_actions.perform`` as the rep id (platform ``web`` means "already a rep
id" there), so the authorization rules stay in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from aiohttp import web
from slack_bolt.context.ack.async_ack import AsyncAck
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.card_actions import perform, resolve_rep
from bot.context import AppContext
from bot.replies import ReplyTemplates, draft_reply, send_reply
from bot.views import card_for
from cards.actions import Action, BadActionId, Verb, decode_action
from cards.strings import text
from config.schema import Settings
from connectors.channels import DeliveryError
from connectors.slack.channel import SlackChannel
from connectors.slack.events import (
    BadPayload,
    SlackClick,
    SocketMode,
    build_bolt_app,
    events_routes,
    parse_block_actions,
    parse_reply_submission,
)
from connectors.slack.render import (
    REPLY_CALLBACK,
    SUBJECT_BLOCK,
    TEMPLATE_ACTION,
    loading_modal,
    message_modal,
    reply_modal,
)
from store import inquiries as repo
from store.engine import transaction
from store.models import JobRun, RepIdentity

log = logging.getLogger(__name__)

PLATFORM = "slack"
_NEGATIVE_TTL = 300.0


class SlackBot:
    """The Slack side of one claimdesk process: Bolt app, listeners, optional Socket Mode."""

    def __init__(
        self,
        ctx: AppContext,
        channel: SlackChannel,
        templates: ReplyTemplates,
        *,
        signing_secret: str,
        app_token: str = "",
        double_click_seconds: float = 3.0,
        submit_budget_seconds: float = 2.5,
    ) -> None:
        self.ctx = ctx
        self.channel = channel
        self.templates = templates
        self.double_click_seconds = double_click_seconds
        self.submit_budget_seconds = submit_budget_seconds
        self.bolt = build_bolt_app(client=channel.client, signing_secret=signing_secret)
        self.bolt.action(re.compile(r"^cd1:"))(self._on_action)
        self.bolt.action(TEMPLATE_ACTION)(self._on_template)
        self.bolt.view(REPLY_CALLBACK)(self._on_reply_submit)
        self.socket = (
            SocketMode(self.bolt, app_token=app_token, client=channel.client) if app_token else None
        )
        self._recent: dict[str, float] = {}
        self._unknown: dict[str, float] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._socket_up = False

    # -- lifecycle -----------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return events_routes(self.bolt)

    async def start(self) -> None:
        if self.socket is not None and not self._socket_up:
            await self.socket.start()
            self._socket_up = True

    async def stop(self) -> None:
        if self.socket is not None and self._socket_up:
            self._socket_up = False
            await self.socket.stop()
        pending = [t for t in self._inflight if not t.done() and t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=10)

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # -- people --------------------------------------------------------------

    async def rep_for_user(self, user: str) -> str | None:
        """The rep id of a Slack user, or ``None`` (not a rep)."""
        rep_id = resolve_rep(self.ctx, PLATFORM, user)
        if rep_id is not None or not user:
            return rep_id
        async with transaction(self.ctx.sessions) as session:
            known = await session.get(RepIdentity, (PLATFORM, user))
        if known is not None and self.ctx.settings.rep(known.rep_id) is not None:
            return known.rep_id
        if time.monotonic() - self._unknown.get(user, -_NEGATIVE_TTL) < _NEGATIVE_TTL:
            return None
        try:
            email = (await self.channel.user_email(user)).strip().lower()
        except DeliveryError:
            log.warning("slack users.info failed", exc_info=True, extra={"user": user})
            return None
        rep = next(
            (
                r
                for r in self.ctx.settings.reps
                if email and r.email.lower() == email and not r.slack_id
            ),
            None,
        )
        if rep is None:
            self._unknown[user] = time.monotonic()
            return None
        await self._remember(user, rep.id)
        return rep.id

    async def slack_user_for_rep(self, rep_id: str) -> str | None:
        """Whom to DM for a rep: ``slack_id``, a remembered identity, or ``users.lookupByEmail``."""
        rep = self.ctx.settings.rep(rep_id)
        if rep is None:
            return None
        if rep.slack_id:
            return rep.slack_id
        async with transaction(self.ctx.sessions) as session:
            row = (
                await session.exec(
                    select(RepIdentity).where(
                        col(RepIdentity.platform) == PLATFORM, col(RepIdentity.rep_id) == rep_id
                    )
                )
            ).first()
        if row is not None:
            return row.platform_user_id
        if not rep.email:
            return None
        user = await self.channel.lookup_by_email(rep.email)
        if user:
            await self._remember(user, rep_id)
        return user

    async def _remember(self, user: str, rep_id: str) -> None:
        try:
            async with transaction(self.ctx.sessions) as session:
                session.add(
                    RepIdentity(
                        platform=PLATFORM,
                        platform_user_id=user,
                        rep_id=rep_id,
                        created_at=self.ctx.clock(),
                    )
                )
        except IntegrityError:
            pass  # remembered concurrently
        log.info("slack user mapped to rep", extra={"user": user, "rep": rep_id})

    async def _action_as(self, user: str) -> tuple[str, str]:
        """(platform, user) to hand to ``perform`` / ``send_reply`` for this Slack user."""
        if resolve_rep(self.ctx, PLATFORM, user) is not None:
            return PLATFORM, user
        rep_id = await self.rep_for_user(user)
        return ("web", rep_id) if rep_id else (PLATFORM, user)

    # -- duplicates ----------------------------------------------------------

    async def _first_delivery(self, click: SlackClick) -> bool:
        now = time.monotonic()
        for key, at in list(self._recent.items()):
            if now - at > self.double_click_seconds:
                del self._recent[key]
        twin = f"{click.channel}:{click.message_ts}:{click.action_id}:{click.value}:{click.user}"
        if twin in self._recent:
            log.info(
                "slack double click dropped", extra={"action": click.action_id, "user": click.user}
            )
            return False
        self._recent[twin] = now
        if not click.action_ts:
            return True
        try:
            async with transaction(self.ctx.sessions) as session:
                session.add(
                    JobRun(
                        key=click.dedupe_key,
                        owner="slack",
                        started_at=self.ctx.clock(),
                        finished_at=self.ctx.clock(),
                    )
                )
        except IntegrityError:
            log.info(
                "slack redelivery dropped", extra={"action": click.action_id, "user": click.user}
            )
            return False
        return True

    # -- listeners -----------------------------------------------------------

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._track()
        try:
            clicks = parse_block_actions(body)
        except BadPayload:
            log.warning("unusable slack block_actions payload", exc_info=True)
            return
        for click in clicks:
            try:
                await self._click(click)
            except Exception:
                log.exception(
                    "slack click failed", extra={"action": click.action_id, "user": click.user}
                )

    async def _click(self, click: SlackClick) -> None:
        try:
            verb, number = decode_action(click.action_id)
        except BadActionId:
            log.warning("unknown slack action id", extra={"action": click.action_id[:80]})
            return
        if verb == Verb.OPEN:
            return  # a link button: Slack opened the page, nothing to do
        if not await self._first_delivery(click):
            return
        if verb == Verb.REPLY:
            await self._open_reply(click, number)
            return
        platform, user = await self._action_as(click.user)
        value = click.value
        if verb == Verb.REASSIGN and value:
            value = await self.rep_for_user(value) or value
        outcome = await perform(
            self.ctx, Action(number, verb, platform, user, value=value, request_id=click.dedupe_key)
        )
        if not outcome.ok and outcome.message and click.channel:
            try:
                await self.channel.post_ephemeral(click.channel, click.user, outcome.message)
            except DeliveryError:
                log.warning("slack ephemeral failed", exc_info=True, extra={"user": click.user})

    async def _locale_of(self, number: int) -> tuple[str, str]:
        """(team, locale) of an inquiry; raises ``repo.NotFound``."""
        async with transaction(self.ctx.sessions) as session:
            inquiry = await repo.get_inquiry(session, number)
        return inquiry.team, self.ctx.locale(inquiry.team)

    async def _reply_refusal(
        self, number: int, team_name: str, rep_id: str | None, locale: str
    ) -> str:
        if rep_id is None:
            return text(locale, "refuse.unknown_rep")
        team = self.ctx.settings.team(team_name)
        if rep_id not in team.rep_ids():
            return text(locale, "refuse.not_member", team=team.title)
        async with transaction(self.ctx.sessions) as session:
            inquiry = await repo.get_inquiry(session, number)
        lead = rep_id in team.leads or rep_id in team.managers
        if inquiry.assignee and inquiry.assignee != rep_id and not lead:
            return text(locale, "refuse.not_owner", name=self.ctx.rep_name(inquiry.assignee))
        return ""

    async def _open_reply(self, click: SlackClick, number: int) -> None:
        try:
            team, locale = await self._locale_of(number)
        except repo.NotFound:
            team, locale = "", "en"
        # The trigger expires 3 s after the click: open first, fill in after.
        view = await self.channel.open_view(click.trigger_id, loading_modal(number, locale=locale))
        view_id, view_hash = str(view.get("id", "")), str(view.get("hash", ""))
        if not team:
            await self.channel.update_view(
                view_id,
                message_modal(
                    number, text(locale, "refuse.not_found", number=number), locale=locale
                ),
            )
            return
        rep_id = await self.rep_for_user(click.user)
        refusal = await self._reply_refusal(number, team, rep_id, locale)
        if refusal or rep_id is None:
            await self.channel.update_view(
                view_id, message_modal(number, refusal, locale=locale), view_hash=view_hash
            )
            return
        draft = await draft_reply(self.ctx, self.templates, number, rep_id)
        await self.channel.update_view(
            view_id, reply_modal(draft, locale=locale), view_hash=view_hash
        )

    async def _on_template(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._track()
        try:
            click = parse_block_actions(body)[0]
            number = int(json.loads(click.private_metadata or "{}")["inquiry"])
        except (BadPayload, IndexError, KeyError, ValueError):
            log.warning("unusable slack template selection", exc_info=True)
            return
        rep_id = await self.rep_for_user(click.user)
        if rep_id is None:
            return
        _, locale = await self._locale_of(number)
        draft = await draft_reply(self.ctx, self.templates, number, rep_id, click.value)
        try:
            await self.channel.update_view(
                click.view_id, reply_modal(draft, locale=locale), view_hash=click.view_hash
            )
        except DeliveryError:
            log.info("slack views.update skipped (view changed meanwhile)", exc_info=True)

    async def _on_reply_submit(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        self._track()
        try:
            submission = parse_reply_submission(body)
        except BadPayload:
            log.warning("unusable slack reply submission", exc_info=True)
            await ack(
                response_action="errors",
                errors={SUBJECT_BLOCK: "This form is out of date; close it and press Reply again."},
            )
            return

        async def send() -> Any:
            platform, user = await self._action_as(submission.user)
            return await send_reply(
                self.ctx,
                inquiry_id=submission.inquiry_id,
                platform=platform,
                user=user,
                subject=submission.subject,
                body=submission.body,
                template=submission.template,
            )

        work = asyncio.ensure_future(send())
        done, _ = await asyncio.wait({work}, timeout=self.submit_budget_seconds)
        if not done:
            # Too slow to answer in place: close the modal now, tell the outcome by DM.
            await ack()
            outcome = await work
            if not outcome.ok:
                await self.channel.send_direct(submission.user, None, outcome.message, locale="en")
            return
        outcome = work.result()
        if outcome.ok:
            await ack()
            return
        block = submission.body_block or SUBJECT_BLOCK
        await ack(response_action="errors", errors={block: outcome.message[:300]})

    # -- direct messages -----------------------------------------------------

    async def send_card_to_rep(self, rep_id: str, inquiry_id: int, message: str = "") -> bool:
        """DM ``rep_id`` the inquiry's card (Claim / Reassign on it), e.g. an escalation.

        Returns False when the rep has no Slack identity. Raises ``DeliveryError``
        like any delivery, so a caller in the outbox gets retries.
        """
        user = await self.slack_user_for_rep(rep_id)
        if not user:
            return False
        async with transaction(self.ctx.sessions) as session:
            inquiry = await repo.get_inquiry(session, inquiry_id)
            card = await card_for(self.ctx, session, inquiry)
        locale = self.ctx.locale(inquiry.team)
        note = message or text(locale, "slack.escalation", number=inquiry_id)
        await self.channel.send_direct(user, card, note, locale=locale)
        return True


async def slack_problems(settings: Settings) -> list[str]:
    """``claimdesk check``: the token works (``auth.test``) and the bot is in every team channel."""
    channel = SlackChannel.from_settings(settings.slack)
    problems: list[str] = []
    try:
        try:
            me = await channel.auth_test()
        except DeliveryError as exc:
            return [f"slack: auth.test failed ({exc}); check [slack] bot_token and api_base_url"]
        log.info("slack token OK", extra={"team": me.team, "bot_user": me.user_id})
        for team in settings.teams:
            dest = team.destinations.slack_channel
            if not dest:
                continue
            try:
                if not await channel.is_member(dest):
                    problems.append(
                        f"slack: the bot is not in channel {dest} of team {team.name!r}; "
                        f"invite it there (/invite @{me.user_id or 'claimdesk'})"
                    )
            except DeliveryError as exc:
                problems.append(f"slack: channel {dest} of team {team.name!r}: {exc}")
        if not settings.slack.signing_secret and not settings.slack.app_token:
            problems.append(
                "slack: set signing_secret (HTTP mode, /slack/events) or app_token (Socket Mode); "
                "otherwise clicks cannot reach claimdesk"
            )
    finally:
        await channel.close()
    return problems
