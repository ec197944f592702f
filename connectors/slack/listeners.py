"""Slack's Bolt listeners: clicks and modal submissions handed to the application's ``Interactions``.

Every listener acks first (Slack wants an answer within 3 s) and does the work
after; the Reply button opens its modal with ``views.open`` right after the ack
(a ``trigger_id`` expires in 3 s) showing "Preparing…", then fills it in with
``views.update``. The modal's submission is the exception: it is answered
*with* the outcome, so a template problem is shown in place
(``response_action: errors``). The same holds for the small reason modal a status
choice that needs words opens (won, lost "other"); a listed lost reason ("Lost:
Price") travels in the select's value and is applied at once.

Duplicates: a redelivered payload (Slack's ``X-Slack-Retry-Num``, Socket Mode
redelivery) carries the same ``action_ts``; it travels as ``Action.request_id``
and the application records it with the change, so only the first delivery acts,
across processes too. A human double click is two payloads with different
``action_ts``: the same (message, action, value, user) within
``double_click_seconds`` is dropped here, in process.

People: a Slack user is a rep by ``[[reps]] slack_id`` or an identity the
application remembers (``Interactions.rep_for``), else by the email of their Slack
profile (``users.info``), which is then remembered (``remember_identity``).

This module imports neither ``bot`` nor ``store`` (an import-linter contract).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from cards.actions import Action, ActionOutcome, BadActionId, Verb, decode_action
from cards.status_choices import split_status_value
from cards.strings import text
from config.schema import Settings
from connectors.channels import DeliveryError
from connectors.platform import Interactions
from connectors.slack.channel import SlackChannel
from connectors.slack.events import (
    BadPayload,
    SlackClick,
    SocketMode,
    build_bolt_app,
    parse_block_actions,
    parse_reason_submission,
    parse_reply_submission,
)
from connectors.slack.render import (
    REASON_BLOCK,
    REASON_CALLBACK,
    REPLY_CALLBACK,
    SUBJECT_BLOCK,
    TEMPLATE_ACTION,
    loading_modal,
    message_modal,
    reason_modal,
    reply_modal,
)

log = logging.getLogger(__name__)

PLATFORM = "slack"
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_NEGATIVE_TTL = 300.0


class SlackListeners:
    """The Bolt app of one process, its listeners and the optional Socket Mode connection."""

    def __init__(
        self,
        settings: Settings,
        channel: SlackChannel,
        interactions: Interactions,
        *,
        double_click_seconds: float = 3.0,
        submit_budget_seconds: float = 2.5,
    ) -> None:
        self.settings = settings
        self.channel = channel
        self.interactions = interactions
        self.double_click_seconds = double_click_seconds
        self.submit_budget_seconds = submit_budget_seconds
        self.bolt: AsyncApp = build_bolt_app(
            client=channel.client, signing_secret=settings.slack.signing_secret
        )
        self.bolt.action(re.compile(r"^cd1:"))(self._on_action)
        self.bolt.action(TEMPLATE_ACTION)(self._on_template)
        self.bolt.view(REPLY_CALLBACK)(self._on_reply_submit)
        self.bolt.view(REASON_CALLBACK)(self._on_reason_submit)
        app_token = settings.slack.app_token
        self.socket = (
            SocketMode(self.bolt, app_token=app_token, client=channel.client) if app_token else None
        )
        self._recent: dict[str, float] = {}
        self._unknown: dict[str, float] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._socket_up = False

    # -- lifecycle -----------------------------------------------------------

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
        if not user:
            return None
        rep_id = await self.interactions.rep_for(PLATFORM, user)
        if rep_id is not None:
            return rep_id
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
                for r in self.settings.reps
                if email and r.email.lower() == email and not r.slack_id
            ),
            None,
        )
        if rep is None:
            self._unknown[user] = time.monotonic()
            return None
        await self.interactions.remember_identity(PLATFORM, user, rep.id)
        return rep.id

    def _locale_of_channel(self, channel: str) -> str:
        """The locale of the team whose channel this is ("en" in a DM or a modal)."""
        team = next(
            (t for t in self.settings.teams if channel and t.destinations.slack_channel == channel),
            None,
        )
        return team.locale if team is not None else "en"

    # -- duplicates ----------------------------------------------------------

    def _double_click(self, click: SlackClick) -> bool:
        now = time.monotonic()
        for key, at in list(self._recent.items()):
            if now - at > self.double_click_seconds:
                del self._recent[key]
        twin = f"{click.channel}:{click.message_ts}:{click.action_id}:{click.value}:{click.user}"
        if twin in self._recent:
            log.info(
                "slack double click dropped", extra={"action": click.action_id, "user": click.user}
            )
            return True
        self._recent[twin] = now
        return False

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
        if self._double_click(click):
            return
        if verb == Verb.REPLY:
            await self._open_reply(click, number)
            return
        value, reason = click.value, ""
        if verb == Verb.STATUS:
            value, reason, ask = split_status_value(value)
            if ask:  # won / lost "other": the words come from a small modal
                locale = self._locale_of_channel(click.channel)
                try:
                    label = text(locale, f"status.{value}")
                except KeyError:
                    label = value[:20]
                await self.channel.open_view(
                    click.trigger_id, reason_modal(number, value, label, locale=locale)
                )
                return
        await self.rep_for_user(click.user)  # profile-email match, remembered for ``act``
        if verb == Verb.REASSIGN and value and _SLACK_USER.match(value):
            # the user picker gives a Slack user; the escalation DM's list gives rep ids
            value = await self.rep_for_user(value) or value
        outcome = await self.interactions.act(
            Action(
                number,
                verb,
                PLATFORM,
                click.user,
                value=value,
                reason=reason,
                request_id=click.dedupe_key if click.action_ts else "",
            )
        )
        if not outcome.ok and outcome.message and click.channel:
            try:
                await self.channel.post_ephemeral(click.channel, click.user, outcome.message)
            except DeliveryError:
                log.warning("slack ephemeral failed", exc_info=True, extra={"user": click.user})

    async def _open_reply(self, click: SlackClick, number: int) -> None:
        locale = self._locale_of_channel(click.channel)
        # The trigger expires 3 s after the click: open first, fill in after.
        view = await self.channel.open_view(click.trigger_id, loading_modal(number, locale=locale))
        view_id, view_hash = str(view.get("id", "")), str(view.get("hash", ""))
        rep_id = await self.rep_for_user(click.user)
        if rep_id is None:
            draft: Any = ActionOutcome(
                False, text(locale, "refuse.unknown_rep"), number, "forbidden"
            )
        else:
            draft = await self.interactions.draft_reply(number, rep_id)
        if isinstance(draft, ActionOutcome):
            await self.channel.update_view(
                view_id, message_modal(number, draft.message, locale=locale), view_hash=view_hash
            )
            return
        await self.channel.update_view(
            view_id, reply_modal(draft, locale=draft.locale), view_hash=view_hash
        )

    async def _on_template(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._track()
        try:
            click = parse_block_actions(body)[0]
            number = int(json.loads(click.private_metadata or "{}")["inquiry"])
        except (BadPayload, IndexError, KeyError, ValueError, TypeError):
            log.warning("unusable slack template selection", exc_info=True)
            return
        rep_id = await self.rep_for_user(click.user)
        if rep_id is None:
            return
        draft = await self.interactions.draft_reply(number, rep_id, click.value)
        if isinstance(draft, ActionOutcome):
            return
        try:
            await self.channel.update_view(
                click.view_id, reply_modal(draft, locale=draft.locale), view_hash=click.view_hash
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

        async def send() -> ActionOutcome:
            rep_id = await self.rep_for_user(submission.user)
            if rep_id is None:
                return ActionOutcome(
                    False, text("en", "refuse.unknown_rep"), submission.inquiry_id, "forbidden"
                )
            return await self.interactions.send_reply(
                submission.inquiry_id,
                rep_id,
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

    async def _on_reason_submit(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """The reason modal: the status change is applied in place, a refusal shown in it."""
        self._track()
        try:
            submission = parse_reason_submission(body)
        except BadPayload:
            log.warning("unusable slack reason submission", exc_info=True)
            await ack(
                response_action="errors",
                errors={REASON_BLOCK: "This form is out of date; close it and choose again."},
            )
            return

        async def apply() -> ActionOutcome:
            await self.rep_for_user(submission.user)
            return await self.interactions.act(
                Action(
                    submission.inquiry_id,
                    Verb.STATUS,
                    PLATFORM,
                    submission.user,
                    value=submission.status,
                    reason=submission.reason,
                    request_id=f"slack:view:{submission.view_id}"[:200]
                    if submission.view_id
                    else "",
                )
            )

        work = asyncio.ensure_future(apply())
        done, _ = await asyncio.wait({work}, timeout=self.submit_budget_seconds)
        if not done:  # too slow to answer in place (Slack's 3 s): close, tell a refusal by DM
            await ack()
            late = await work
            if not late.ok:
                await self.channel.send_direct(submission.user, None, late.message, locale="en")
            return
        outcome = work.result()
        if outcome.ok:
            await ack()
            return
        await ack(response_action="errors", errors={REASON_BLOCK: outcome.message[:300]})
