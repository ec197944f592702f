"""``WeComChannel``: the ``ChatChannel`` port for WeCom, split between a group and the reps.

A card's destination is the team's group (``destinations.wecom_chat``): an
``appchat`` chatid (the group must be created by the app, document/path/90245),
or ``robot:<key>`` for a group robot webhook. The group gets markdown — a post
per new inquiry, then one line per change of owner or status — and every rep of
the team with a ``wecom_id`` gets the interactive ``button_interaction`` card by
``message/send`` (document/path/90236), ``touser`` ``"a|b|c"``.

``PostedCard``: ``ref`` is the card's ``task_id``; ``data`` holds ``chat`` (the
group), ``task_id``, ``users`` (who got the card), ``codes`` (unused
``response_code``s with the wall-clock time each was obtained), the last
``status``/``owner`` the group was told, ``stale`` (older task ids of the
same card) and ``offered`` (codes from clicks, ``[code, obtained, task_id]``,
which the application appends to the stored ``CardRef`` in any process — see
``bot.interfaces.interactions`` — and the next update absorbs into ``codes``). Every
change updates every rep's copy with
``message/update_template_card`` and ``atall: 1`` (document/path/94888 / 94945),
spending one code: "一个code只能调用一次该接口,且只能在72小时内调用". Codes come
from the send and from each click callback: stored with the card by the
application before the click is applied (``offered``, so another process or a
restart can spend it), and also kept in this process (``offer_code``).
A code answered with 60140 (used or expired) is skipped; when none is left the
reps get a fresh card (new task id) and the old one is recorded as stale.
``update_card`` returns the new ``PostedCard`` so the caller stores it.

Idempotency: WeCom has no lookup by our key. ``find_posted`` answers from what
this process saw accepted (so a failed record after an accepted post is found
again); after a crash between WeCom's accept and our record the post is sent
again (the reps get a second card, the group a second post): the one duplicate
we cannot rule out. Within a process, a retry of a half-done post or update
never repeats the half that succeeded.

Pacing: ``Pacing(post_interval=3.0)`` per destination (group robots: 20/min);
app messages to one member are held to 30/min and 1,000/h by a
``RecipientLimiter`` (over budget -> ``DeliveryError(retry_after=...)``: the
outbox keeps the row, nothing is dropped — WeCom would drop it silently).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from cards.model import Card
from config.schema import TeamSettings
from connectors.channels import DeliveryError, Pacing, PostedCard
from connectors.wecom.api import CODE_USED, RecipientLimiter, WeComApi, WeComApiError
from connectors.wecom.render import (
    card_state,
    is_interactive,
    render_digest,
    render_direct,
    render_group_change,
    render_group_post,
    render_note,
    render_template_card,
    task_id_for,
)

log = logging.getLogger(__name__)

CODE_LIFETIME = 72 * 3600.0
CODE_MARGIN = 3600.0  # spend no code in its last hour: clocks and queues drift
ROBOT_PREFIX = "robot:"
MEMO_LIMIT = 20_000  # in-process memos (accepted posts, done updates, locks) kept per kind


def _prune(memo: dict[Any, Any]) -> None:
    """Forget the oldest entries of an in-process memo beyond ``MEMO_LIMIT``."""
    while len(memo) > MEMO_LIMIT:
        del memo[next(iter(memo))]


class WeComChannel:
    """WeCom as a ``ChatChannel``: group markdown + button cards for the team's reps."""

    name = "wecom"

    def __init__(
        self,
        api: WeComApi,
        *,
        agent_id: int,
        recipients: dict[str, tuple[str, ...]],
        pacing: Pacing | None = None,
        limiter: RecipientLimiter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.pacing = pacing or Pacing(post_interval=3.0, update_interval=0.0)
        self._agent_id = agent_id
        self._recipients = recipients
        self._limiter = limiter or RecipientLimiter()
        self._now = wall_clock
        self._offered: dict[str, list[list[Any]]] = {}
        self._used: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._accepted: dict[tuple[str, str], PostedCard] = {}
        self._partial: dict[str, dict[str, Any]] = {}
        self._done: dict[tuple[str, ...], None] = {}

    # -- what the callback route feeds in -------------------------------------

    def offer_code(self, task_id: str, code: str) -> None:
        """A fresh ``response_code`` from a click on ``task_id`` (single use, 72 h)."""
        if task_id and code:
            self._offered.setdefault(task_id, []).append([code, self._now()])
            _prune(self._offered)

    def recipients(self, destination: str) -> tuple[str, ...]:
        return self._recipients.get(destination, ())

    # -- ChatChannel -----------------------------------------------------------

    def destinations(self, team: TeamSettings) -> list[str]:
        chat = team.destinations.wecom_chat
        return [chat] if chat else []

    async def find_posted(
        self, destination: str, idempotency_key: str, *, since: datetime
    ) -> PostedCard | None:
        """The post accepted under ``idempotency_key`` in this process (WeCom has no lookup)."""
        return self._accepted.get((destination, idempotency_key))

    async def post_card(
        self, destination: str, card: Card, *, locale: str, idempotency_key: str = ""
    ) -> PostedCard:
        key = idempotency_key or secrets.token_hex(8)
        found = self._accepted.get((destination, key))
        if found is not None:
            return found
        if not is_interactive(card):
            # Digests and other read-only cards: one markdown post in the group.
            body = (
                render_digest(card, locale=locale)
                if card.key.startswith("digest:")
                else render_group_post(card, locale=locale)
            )
            await self._group(destination, body)
            posted = PostedCard(ref=f"group-{key}", data={"chat": destination})
            self._accepted[(destination, key)] = posted
            return posted
        part = self._partial.setdefault(key, {})
        users = list(self.recipients(destination))
        if users and "task_id" not in part:
            task_id = task_id_for(card, key)
            code = await self._send_card(users, card, locale=locale, task_id=task_id)
            part.update(task_id=task_id, codes=[[code, self._now()]] if code else [])
        if not part.get("group_sent"):
            await self._group(destination, render_group_post(card, locale=locale))
            part["group_sent"] = True
        task_id = str(part.get("task_id", ""))
        posted = PostedCard(
            ref=task_id or f"group-{key}",
            data={
                "chat": destination,
                "task_id": task_id,
                "users": users if task_id else [],
                "codes": list(part.get("codes", [])),
                "stale": [],
                **card_state(card, locale),
            },
        )
        self._accepted[(destination, key)] = posted
        self._partial.pop(key, None)
        _prune(self._accepted)
        _prune(self._locks)
        return posted

    async def update_card(
        self, destination: str, posted: PostedCard, card: Card, *, locale: str
    ) -> PostedCard | None:
        task_id = str(posted.data.get("task_id", ""))
        lock = self._locks.setdefault(task_id or posted.ref, asyncio.Lock())
        async with lock:
            data = dict(posted.data)
            chat = str(data.get("chat") or destination)
            if task_id:
                data = await self._update_rep_cards(chat, data, card, locale=locale)
            before = {"status": str(data.get("status", "")), "owner": str(data.get("owner", ""))}
            after = card_state(card, locale)
            if after != before:
                marker = (str(data.get("task_id", posted.ref)), after["status"], after["owner"])
                if marker not in self._done:
                    owner_changed = after["owner"] != before["owner"]
                    await self._group(
                        chat, render_group_change(card, locale=locale, owner_changed=owner_changed)
                    )
                    self._done[marker] = None
                data.update(after)
            return PostedCard(ref=str(data.get("task_id") or posted.ref), data=data)

    async def post_thread(
        self,
        destination: str,
        posted: PostedCard,
        text: str,
        *,
        locale: str,
        mentions: tuple[str, ...] = (),
    ) -> None:
        chat = str(posted.data.get("chat") or destination)
        await self._group(chat, render_note(text, mentions))

    async def send_direct(self, user: str, card: Card | None, text: str, *, locale: str) -> None:
        """An app message to one person: the button card (escalation: Claim / Reassign) or text."""
        if card is not None and is_interactive(card):
            if text and text not in card.notes:
                card = replace(card, notes=(text, *card.notes))
            task_id = task_id_for(card, secrets.token_hex(8))
            await self._send_card([user], card, locale=locale, task_id=task_id)
            return
        await self.tell(user, render_direct(card, text, locale=locale))

    # -- beyond the port -------------------------------------------------------

    async def tell(self, user: str, markdown: str) -> None:
        """A markdown app message to one member (click answers, reply links)."""
        self._check_budget([user])
        await self.api.call(
            "message/send",
            {
                "touser": user,
                "msgtype": "markdown",
                "agentid": self._agent_id,
                "markdown": {"content": markdown},
            },
        )
        self._limiter.record([user])

    def _check_budget(self, users: list[str]) -> None:
        wait = self._limiter.wait_for(users)
        if wait > 0:
            raise DeliveryError(
                f"wecom: per-member message limit reached, next slot in {wait:.0f} s",
                retry_after=wait,
            )

    async def _send_card(self, users: list[str], card: Card, *, locale: str, task_id: str) -> str:
        self._check_budget(users)
        data = await self.api.call(
            "message/send",
            {
                "touser": "|".join(users),
                "msgtype": "template_card",
                "agentid": self._agent_id,
                "template_card": render_template_card(card, locale=locale, task_id=task_id),
            },
        )
        self._limiter.record(users)
        invalid = str(data.get("invaliduser", "") or "")
        if invalid:
            log.warning("wecom: some reps are not reachable", extra={"invaliduser": invalid})
        return str(data.get("response_code", "") or "")

    async def _group(self, chat: str, markdown: str) -> None:
        body = {"msgtype": "markdown", "markdown": {"content": markdown}}
        if chat.startswith(ROBOT_PREFIX):
            await self.api.robot(chat[len(ROBOT_PREFIX) :], body)
        else:
            await self.api.call("appchat/send", {"chatid": chat, **body})

    def _usable_codes(self, data: dict[str, Any], task_id: str) -> list[list[Any]]:
        now = self._now()
        pool = [
            *data.get("codes", []),
            # [code, at, task]: a code is for the task it came from (not a later fresh card)
            *(o[:2] for o in data.get("offered", []) if len(o) < 3 or o[2] == task_id),
            *self._offered.get(task_id, []),
        ]
        fresh: dict[str, tuple[float, int]] = {}
        for order, (code, at) in enumerate(pool):
            if code in self._used or now - float(at) > CODE_LIFETIME - CODE_MARGIN:
                continue
            fresh[str(code)] = (float(at), order)
        # Freshest first (most life left); on a tie the one obtained last.
        ranked = sorted(fresh.items(), key=lambda item: (-item[1][0], -item[1][1]))
        return [[code, at] for code, (at, _order) in ranked]

    async def _update_rep_cards(
        self, chat: str, data: dict[str, Any], card: Card, *, locale: str
    ) -> dict[str, Any]:
        task_id = str(data["task_id"])
        marker = ("card", task_id, str(card.version), card.badge.status)
        codes = self._usable_codes(data, task_id)
        data["offered"] = []  # absorbed into ``codes`` (those still usable)
        if marker in self._done:
            data["codes"] = codes
            return data
        template = render_template_card(card, locale=locale, task_id=task_id)
        for code, _at in list(codes):
            self._used.add(str(code))
            codes.remove([code, _at])
            try:
                await self.api.call(
                    "message/update_template_card",
                    {
                        "atall": 1,
                        "agentid": self._agent_id,
                        "response_code": code,
                        "template_card": template,
                    },
                )
            except WeComApiError as exc:
                if exc.errcode == CODE_USED:
                    log.info("wecom: response_code spent or expired", extra={"task_id": task_id})
                    continue
                # Refused before use (throttled, busy, token): the code is still good for the
                # outbox's retry. Were it spent after all, the retry gets 60140 and moves on.
                self._used.discard(str(code))
                raise
            except DeliveryError:
                self._used.discard(str(code))  # transport failure: same reasoning
                raise
            self._done[marker] = None
            self._offered.pop(task_id, None)
            data["codes"] = codes
            return data
        # No code left: a fresh card for the reps; the old one stays as it was (stale).
        users = [str(u) for u in data.get("users", [])] or list(self.recipients(chat))
        new_task = task_id_for(card, secrets.token_hex(8))
        code = await self._send_card(users, card, locale=locale, task_id=new_task)
        log.info(
            "wecom: fresh card (no response_code left)", extra={"old": task_id, "new": new_task}
        )
        self._offered.pop(task_id, None)
        self._done[("card", new_task, str(card.version), card.badge.status)] = None
        _prune(self._done)
        data.update(
            task_id=new_task,
            users=users,
            codes=[[code, self._now()]] if code else [],
            stale=[*data.get("stale", []), task_id],
        )
        return data
