"""``GET``/``POST /wecom/callback``: URL verification and encrypted click events.

A click is answered within WeCom's 5 s (document/path/90238: an unanswered
callback is retried): the route verifies and decrypts, hands the click's fresh
``response_code`` to the channel (so the card update the click causes can use
it), then runs ``interactions.act`` with a budget of ``ACT_BUDGET`` seconds. The
act is shielded: if the budget runs out it still completes, and WeCom's retry of
the same event carries the same ``request_id``, which the application applies at
most once. The answer is an empty body (allowed: "直接回复空串"); the card
updates for everyone come from the outbox afterwards. What the clicker alone
needs to hear — who won a claim, a refusal, the reply link — is sent to them as
an app message after the answer, never inside it.

A bad signature, a wrong key or a foreign corp id is answered 401 and nothing
else happens.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from wechatpy.work.crypto import WeChatCrypto

from cards.actions import Action, ActionOutcome, BadActionId, Verb
from connectors.channels import DeliveryError
from connectors.platform import Interactions
from connectors.wecom.callback import (
    BadCallback,
    MalformedEvent,
    decrypt,
    parse_event,
    to_action,
    verify_url,
)
from connectors.wecom.channel import WeComChannel
from connectors.wecom.escaping import inert_markdown
from connectors.wecom.strings import wecom_text

log = logging.getLogger(__name__)

PATH = "/wecom/callback"
ACT_BUDGET = 4.0


class CallbackHandler:
    """The two callback routes, bound to one corp's crypto, the channel and the application."""

    def __init__(
        self,
        *,
        crypto: WeChatCrypto,
        token: str,
        channel: WeComChannel,
        interactions: Interactions,
        locale: str = "zh-CN",
        act_budget: float = ACT_BUDGET,
    ) -> None:
        self._crypto = crypto
        self._token = token
        self._channel = channel
        self._interactions = interactions
        self._locale = locale
        self._budget = act_budget
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.verify), web.post(PATH, self.event)]

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = verify_url(
                self._crypto,
                self._token,
                msg_signature=q.get("msg_signature", ""),
                timestamp=q.get("timestamp", ""),
                nonce=q.get("nonce", ""),
                echostr=q.get("echostr", ""),
            )
        except BadCallback as exc:
            log.warning("wecom URL check refused", extra={"reason": str(exc)})
            return web.Response(status=401, text="bad signature")
        return web.Response(text=echo)

    async def event(self, request: web.Request) -> web.Response:
        q = request.query
        body = await request.content.read(200_000)
        try:
            plain = decrypt(
                self._crypto,
                self._token,
                body,
                msg_signature=q.get("msg_signature", ""),
                timestamp=q.get("timestamp", ""),
                nonce=q.get("nonce", ""),
            )
        except BadCallback as exc:
            log.warning("wecom callback refused", extra={"reason": str(exc)})
            return web.Response(status=401, text="bad signature")
        try:
            event = parse_event(plain)
        except MalformedEvent as exc:
            log.warning("wecom callback unreadable", extra={"reason": str(exc)})
            return web.Response(status=400, text="unreadable event")
        if event is None:
            return web.Response(text="")  # other messages and events: nothing to do
        self._channel.offer_code(event.task_id, event.response_code)
        try:
            action = to_action(event)
        except BadActionId:
            log.info("wecom click on a key we did not write", extra={"task_id": event.task_id})
            return web.Response(text="")
        work = asyncio.ensure_future(self._apply(action))
        try:
            await asyncio.wait_for(asyncio.shield(work), self._budget)
        except TimeoutError:
            log.warning(
                "wecom click still running after the answer budget",
                extra={"request_id": action.request_id},
            )
            self._keep(work)
        return web.Response(text="")

    def _keep(self, task: asyncio.Future[None]) -> None:
        if isinstance(task, asyncio.Task):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _apply(self, action: Action) -> None:
        outcome = await self._interactions.act(action)
        follow = asyncio.ensure_future(self._answer_clicker(action, outcome))
        self._keep(follow)

    async def _answer_clicker(self, action: Action, outcome: ActionOutcome) -> None:
        """What only the clicker needs: the reply link, or why nothing happened."""
        try:
            if action.verb == Verb.REPLY and outcome.ok:
                # The signed link: WeCom's in-app browser has no claimdesk session.
                rep = await self._interactions.rep_for("wecom", action.user)
                link = (
                    await self._interactions.reply_link(action.inquiry_id, rep)
                    if rep is not None
                    else outcome.open_url
                )
                if not link:
                    return
                label = wecom_text(self._locale, "click.reply", title=f"#{action.inquiry_id}")
                await self._channel.tell(action.user, f"[{inert_markdown(label)}]({link})")
            elif not outcome.ok and outcome.message:
                await self._channel.tell(action.user, inert_markdown(outcome.message))
        except DeliveryError as exc:
            log.warning("wecom: could not answer the clicker", extra={"error": str(exc)})

    async def drain(self) -> None:
        """Wait for click work still running (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
