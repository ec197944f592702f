"""``DingTalkChannel``: the ``ChatChannel`` port over DingTalk's card and robot APIs.

- ``post_card``: ``createAndDeliver`` into ``dtv1.card//IM_GROUP.<openConversationId>``
  with ``callbackType: "STREAM"`` and the app's robot (``imGroupOpenDeliverModel.robotCode``).
  The ``outTrackId`` is derived from the idempotency key (``render.out_track_id``),
  so a retried post names the same card instance.
- ``update_card``: ``PUT /v1.0/card/instances`` by ``outTrackId`` with
  ``cardUpdateOptions.updateCardDataByKey`` — every member's copy changes (the
  callback's own answer only reaches the clicker: message-card-sending-and-updating).
- ``post_thread``: DingTalk cards have no threads: a robot group message
  (``sampleMarkdown``) that names the inquiry, with live ``@userId`` mentions.
- ``send_direct``: ``oToMessages/batchSend`` (``sampleMarkdown``) with the card's link.

Pacing: robot messages are limited to 20 per minute per group (DESIGN.md, Outbox),
so posts are spaced 3 s; updates are not paced (the interactive lane).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from cards.model import Card
from config.schema import DingTalkSettings, TeamSettings
from connectors.channels import DeliveryError, Pacing, PostedCard
from connectors.dingtalk.openapi import DingTalkOpenApi
from connectors.dingtalk.render import (
    is_interactive,
    markdown_card,
    markdown_note,
    out_track_id,
    render_card,
)

log = logging.getLogger(__name__)

SPACE_PREFIX = "dtv1.card//IM_GROUP."
# Error codes that mean "this outTrackId already exists": not documented; guarded (see find_posted).
_DUPLICATE_HINTS = (
    "outTrackIdExist",
    "outTrackId.exist",
    "duplicate",
    "alreadyExist",
    "AlreadyExist",
)


class DingTalkChannel:
    """DingTalk as a ``ChatChannel``: interactive cards in groups, robot notes and DMs."""

    name = "dingtalk"

    def __init__(
        self,
        api: DingTalkOpenApi,
        *,
        robot_code: str,
        card_template_id: str,
        pacing: Pacing | None = None,
    ) -> None:
        self.api = api
        self.robot_code = robot_code
        self.card_template_id = card_template_id
        self.pacing = pacing or Pacing(post_interval=3.0, update_interval=0.0)

    @classmethod
    def from_settings(cls, settings: DingTalkSettings) -> DingTalkChannel:
        api = DingTalkOpenApi(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            base_url=settings.api_base_url,
        )
        return cls(api, robot_code=settings.robot_code, card_template_id=settings.card_template_id)

    async def close(self) -> None:
        await self.api.stop()

    def destinations(self, team: TeamSettings) -> list[str]:
        conversation = team.destinations.dingtalk_conversation
        return [conversation] if conversation else []

    # -- cards -------------------------------------------------------------------

    def track_id(self, destination: str, card: Card, idempotency_key: str = "") -> str:
        """The ``outTrackId`` a post of ``card`` to ``destination`` gets."""
        return out_track_id(card.key, idempotency_key or f"{destination}|{card.key}")

    async def post_card(
        self, destination: str, card: Card, *, locale: str, idempotency_key: str = ""
    ) -> PostedCard:
        if not is_interactive(card):
            # Digests and other read-only cards: a robot markdown post in the group
            # (the card template is for inquiries; a digest has nothing to press).
            await self.group_markdown(
                destination,
                "",
                locale=locale,
                title=card.title,
                trusted_markdown=markdown_card(card, "", locale=locale),
            )
            return PostedCard(ref=f"group-{card.key}", data={"conversation": destination})
        track = self.track_id(destination, card, idempotency_key)
        params = render_card(card, locale=locale)
        body: dict[str, Any] = {
            "cardTemplateId": self.card_template_id,
            "outTrackId": track,
            "callbackType": "STREAM",
            "cardData": {"cardParamMap": params},
            "openSpaceId": SPACE_PREFIX + destination,
            "imGroupOpenSpaceModel": {
                "supportForward": False,
                "lastMessageI18n": {"ZH_CN": params["lastMessage"], "EN_US": params["lastMessage"]},
            },
            "imGroupOpenDeliverModel": {"robotCode": self.robot_code},
            "userIdType": 1,  # 1 = userId (staff id), the rep's dingtalk_id
        }
        try:
            answer = await self.api.create_and_deliver(body)
        except DeliveryError as exc:
            if exc.permanent and any(h in str(exc) for h in _DUPLICATE_HINTS):
                # The instance exists (an earlier attempt got through): adopt it.
                log.info("dingtalk createAndDeliver: %s already exists, adopting it", track)
                return PostedCard(ref=track, data={"conversation": destination})
            raise
        _check_delivered(answer, track)
        return PostedCard(ref=track, data={"conversation": destination})

    async def find_posted(
        self, destination: str, idempotency_key: str, *, since: datetime
    ) -> PostedCard | None:
        """Whether a post with ``idempotency_key`` already reached DingTalk.

        DingTalk documents no lookup of a card instance by ``outTrackId``, so this
        cannot confirm; it returns ``None`` and the caller re-posts. That is safe
        because the re-post uses the same ``outTrackId`` (``track_id`` is derived from
        the key), and the instance is keyed by it: the fake API and ``post_card``'s
        duplicate handling make the second call adopt the first card, never a twin.
        """
        return None

    async def update_card(
        self, destination: str, posted: PostedCard, card: Card, *, locale: str
    ) -> PostedCard | None:
        body = {
            "outTrackId": posted.ref,
            "cardData": {"cardParamMap": render_card(card, locale=locale)},
            "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
            "userIdType": 1,
        }
        await self.api.update_card(body)
        return None

    # -- messages ------------------------------------------------------------------

    async def post_thread(
        self,
        destination: str,
        posted: PostedCard,
        text: str,
        *,
        locale: str,
        mentions: tuple[str, ...] = (),
    ) -> None:
        conversation = str(posted.data.get("conversation") or destination)
        await self.group_markdown(conversation, text, locale=locale, mentions=mentions)

    async def group_markdown(
        self,
        conversation: str,
        text: str,
        *,
        locale: str,
        mentions: tuple[str, ...] = (),
        title: str = "claimdesk",
        trusted_markdown: str = "",
    ) -> None:
        """A robot markdown message in a group (notes, nudges, digests).

        ``text`` is made inert; ``trusted_markdown`` (our own rendering, e.g. a digest
        built from ``markdown_card``) is sent as is. Mentions: ``@userId`` in the text
        plus ``atUserIds`` in ``msgParam`` (the custom-robot convention; the app-robot
        docs do not spell it out, see docs/dingtalk.md).
        """
        body = trusted_markdown or markdown_note(text, mentions)
        param: dict[str, Any] = {"title": title[:60], "text": body}
        if mentions:
            param["atUserIds"] = [m for m in mentions if m]
        await self.api.group_message(
            robot_code=self.robot_code,
            conversation=conversation,
            msg_key="sampleMarkdown",
            msg_param=param,
        )

    async def send_direct(self, user: str, card: Card | None, text: str, *, locale: str) -> None:
        """A robot one-to-one message to ``user`` (a ``dingtalk_id``), with the card's link."""
        if not user:
            raise DeliveryError("dingtalk DM: the recipient has no dingtalk_id", permanent=True)
        if card is not None:
            body = markdown_card(card, text, locale=locale)
            title = card.title
        else:
            body = markdown_note(text, ())
            title = text
        await self.api.one_to_one(
            robot_code=self.robot_code,
            user_ids=[user],
            msg_key="sampleMarkdown",
            msg_param={"title": " ".join(title.split())[:60] or "claimdesk", "text": body},
        )


def _check_delivered(answer: dict[str, Any], track: str) -> None:
    """createAndDeliver answers 200 even when the group refused the card: look inside."""
    result = answer.get("result") or {}
    results = result.get("deliverResults") or []
    failed = [r for r in results if isinstance(r, dict) and r.get("success") is False]
    if failed and len(failed) == len(results):
        reason = str(failed[0].get("errorMsg") or "not delivered")[:200]
        raise DeliveryError(
            f"dingtalk createAndDeliver {track}: {reason} (is the app's robot in the group?)",
            permanent=True,
        )
    if answer.get("success") is False:
        raise DeliveryError(f"dingtalk createAndDeliver {track}: success=false", permanent=True)
