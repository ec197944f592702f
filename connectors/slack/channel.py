"""``SlackChannel``: the ``ChatChannel`` port over slack-sdk's ``AsyncWebClient``.

Posting goes through the outbox worker, which owns retries, backoff and the
per-channel pacing (``Pacing(post_interval=1.0)``: Slack's ~1 message/s per
channel). So the client is built *without* ``AsyncRateLimitErrorRetryHandler``:
a 429 becomes ``DeliveryError(retry_after=<Retry-After>)`` and the worker
pauses that channel only; errors retrying cannot fix (``channel_not_found``,
``not_in_channel``, ``invalid_auth`` ...) are permanent. Connection errors and
timeouts are retryable.

A new card carries the outbox key in its message ``metadata`` (event_type
``claimdesk_card``, event_payload ``{"key": ...}``); after an attempt with an
unknown outcome ``find_posted`` looks for it with ``conversations.history``
(``include_all_metadata``) before the worker posts again.

Besides the port this class offers the few calls the Slack glue in ``bot``
needs (ephemeral messages, modals, user lookups, ``auth.test``); it never
touches the database. One ``aiohttp.ClientSession`` lives as long as the
channel (created on first use inside the running loop, closed by ``close``).
The SDK's own retry handlers are off (its default retries a dropped connection,
which re-posts what Slack may have accepted).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from cards.model import Card
from config.schema import SlackSettings, TeamSettings
from connectors.channels import DeliveryError, Pacing, PostedCard
from connectors.slack.render import fallback_text, render_card, render_note, render_text

log = logging.getLogger(__name__)

CARD_EVENT_TYPE = "claimdesk_card"  # message metadata event_type of our cards
HISTORY_PAGES = 10
HISTORY_SKEW_SECONDS = 120.0  # our clock and Slack's may disagree a little

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "message_not_found",
        "cant_update_message",
        "user_not_found",
        "users_not_found",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "restricted_action",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)


@dataclass(frozen=True)
class SlackIdentity:
    """Who the bot is (``auth.test``)."""

    team: str
    team_id: str
    user_id: str
    bot_id: str
    url: str


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    raw = headers.get("Retry-After") or headers.get("retry-after") or "1"
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        return 1.0


def translate_error(method: str, exc: BaseException) -> DeliveryError:
    """A slack-sdk / transport error as the outbox worker understands it."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 429 or code in ("ratelimited", "rate_limited"):
            return DeliveryError(
                f"slack {method}: rate limited", retry_after=_retry_after(response)
            )
        if code in PERMANENT_ERRORS:
            return DeliveryError(f"slack {method}: {code}", permanent=True)
        return DeliveryError(f"slack {method}: {code or f'HTTP {status}'}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return DeliveryError(f"slack {method}: timed out")
    return DeliveryError(f"slack {method}: {type(exc).__name__}: {str(exc)[:200]}")


class SlackChannel:
    """Slack as a ``ChatChannel``: cards in channels, threads for the timeline, DMs."""

    name = "slack"

    def __init__(
        self,
        *,
        bot_token: str,
        api_base_url: str = "https://slack.com/api/",
        pacing: Pacing | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.pacing = pacing or Pacing(post_interval=1.0, update_interval=0.0)
        self._token = bot_token
        self._base_url = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    @classmethod
    def from_settings(
        cls, settings: SlackSettings, *, pacing: Pacing | None = None
    ) -> SlackChannel:
        return cls(bot_token=settings.bot_token, api_base_url=settings.api_base_url, pacing=pacing)

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client (also handed to the Bolt app, so both share one session)."""
        if self._client is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            # No retry handlers at all, on purpose: the outbox worker honours Retry-After, and
            # the SDK's default connection-error retry would re-send a chat.postMessage that
            # Slack may already have accepted (a second card) behind the worker's back.
            self._client = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                session=self._session,
                timeout=int(self._timeout),
                retry_handlers=[],
            )
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._client = None, None

    async def _call(self, method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await self.client.api_call(method, json=kwargs)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as exc:
            raise translate_error(method, exc) from exc

    async def _get(self, method: str, **params: Any) -> AsyncSlackResponse:
        try:
            return await self.client.api_call(method, http_verb="GET", params=params)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as exc:
            raise translate_error(method, exc) from exc

    # -- ChatChannel ---------------------------------------------------------

    def destinations(self, team: TeamSettings) -> list[str]:
        channel = team.destinations.slack_channel
        return [channel] if channel else []

    async def post_card(
        self, destination: str, card: Card, *, locale: str, idempotency_key: str = ""
    ) -> PostedCard:
        extra: dict[str, Any] = {}
        if idempotency_key:
            extra["metadata"] = {
                "event_type": CARD_EVENT_TYPE,
                "event_payload": {"key": idempotency_key},
            }
        response = await self._call(
            "chat.postMessage",
            channel=destination,
            text=fallback_text(card, locale),
            blocks=render_card(card, locale=locale),
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return PostedCard(
            ref=str(response["ts"]), data={"channel": str(response.get("channel") or destination)}
        )

    async def find_posted(
        self, destination: str, idempotency_key: str, *, since: datetime
    ) -> PostedCard | None:
        """Search the channel's history since ``since`` (less a margin for clock skew) for a
        message of ours whose metadata carries ``idempotency_key``. Bounded: at most
        ``HISTORY_PAGES`` pages of 200 messages, newest first; beyond that the post is
        treated as absent (a channel with thousands of messages in minutes)."""
        oldest = f"{max(0.0, since.timestamp() - HISTORY_SKEW_SECONDS):.6f}"
        cursor = ""
        for _ in range(HISTORY_PAGES):
            params: dict[str, Any] = {
                "channel": destination,
                "oldest": oldest,
                "limit": 200,
                "include_all_metadata": "true",
            }
            if cursor:
                params["cursor"] = cursor
            data = await self._get("conversations.history", **params)
            for message in data.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == CARD_EVENT_TYPE
                    and payload.get("key") == idempotency_key
                ):
                    return PostedCard(ref=str(message["ts"]), data={"channel": destination})
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not data.get("has_more") or not cursor:
                return None
        log.warning(
            "slack history search stopped after %d pages",
            HISTORY_PAGES,
            extra={"channel": destination},
        )
        return None

    async def update_card(
        self, destination: str, posted: PostedCard, card: Card, *, locale: str
    ) -> PostedCard | None:
        channel = str(posted.data.get("channel") or destination)
        await self._call(
            "chat.update",
            channel=channel,
            ts=posted.ref,
            text=fallback_text(card, locale),
            blocks=render_card(card, locale=locale),
        )
        return None

    async def post_thread(
        self,
        destination: str,
        posted: PostedCard,
        text: str,
        *,
        locale: str,
        mentions: tuple[str, ...] = (),
    ) -> None:
        channel = str(posted.data.get("channel") or destination)
        await self._call(
            "chat.postMessage",
            channel=channel,
            thread_ts=posted.ref,
            text=render_note(text, mentions),
            unfurl_links=False,
            unfurl_media=False,
        )

    async def send_direct(self, user: str, card: Card | None, text: str, *, locale: str) -> None:
        """DM a Slack user (``conversations.open``), with the card's blocks when given."""
        opened = await self._call("conversations.open", users=user)
        channel = str((opened.get("channel") or {}).get("id", ""))
        if not channel:
            raise DeliveryError(
                f"slack conversations.open gave no channel for {user}", permanent=True
            )
        blocks = render_text(text) if text else []
        if card is not None:
            blocks += render_card(card, locale=locale)
        fallback = (
            blocks[0]["text"]["text"] if text else fallback_text(card, locale) if card else ""
        )
        await self._call(
            "chat.postMessage",
            channel=channel,
            text=fallback,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )

    # -- what the Slack glue in ``bot`` needs --------------------------------

    async def post_ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees ("Alice claimed it 3 s ago")."""
        blocks = render_text(text)
        await self._call(
            "chat.postEphemeral",
            channel=channel,
            user=user,
            text=blocks[0]["text"]["text"],
            blocks=blocks,
        )

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> dict[str, Any]:
        response = await self._call("views.open", trigger_id=trigger_id, view=view)
        return dict(response.get("view") or {})

    async def update_view(
        self, view_id: str, view: dict[str, Any], *, view_hash: str = ""
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"view_id": view_id, "view": view}
        if view_hash:
            kwargs["hash"] = view_hash
        response = await self._call("views.update", **kwargs)
        return dict(response.get("view") or {})

    async def auth_test(self) -> SlackIdentity:
        data = await self._call("auth.test")
        return SlackIdentity(
            team=str(data.get("team", "")),
            team_id=str(data.get("team_id", "")),
            user_id=str(data.get("user_id", "")),
            bot_id=str(data.get("bot_id", "")),
            url=str(data.get("url", "")),
        )

    async def is_member(self, channel: str) -> bool:
        """Whether the bot is in ``channel`` (``conversations.info``'s ``is_member``)."""
        data = await self._get("conversations.info", channel=channel)
        return bool((data.get("channel") or {}).get("is_member"))

    async def lookup_by_email(self, email: str) -> str | None:
        """The Slack user id of ``email``; ``None`` when there is no such user."""
        try:
            data = await self._get("users.lookupByEmail", email=email)
        except DeliveryError as exc:
            if exc.permanent:
                return None
            raise
        return str((data.get("user") or {}).get("id", "")) or None

    async def user_email(self, user: str) -> str:
        """The profile email of a Slack user (``users.info``; needs ``users:read.email``)."""
        data = await self._get("users.info", user=user)
        return str(((data.get("user") or {}).get("profile") or {}).get("email", ""))
