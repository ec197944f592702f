"""Slack as a ``ChatPlatform``: its channel, the Bolt listeners (HTTP and Socket Mode), checks.

``build_platform(settings)`` is what ``connectors.registry`` calls: ``None`` when
``[slack] bot_token`` is not set. The listeners exist only with a signing secret
(Bolt verifies every request with it) and when the channel is a real
``SlackChannel`` (tests may hand a recording channel in its place).
"""

from __future__ import annotations

import logging

from aiohttp import web

from config.schema import RepSettings, Settings
from connectors.channels import ChatChannel, DeliveryError
from connectors.platform import ChatPlatform, Interactions
from connectors.slack.channel import SlackChannel
from connectors.slack.events import events_routes
from connectors.slack.listeners import PLATFORM, SlackListeners

log = logging.getLogger(__name__)


class SlackPlatform:
    """The Slack workspace of one claimdesk process."""

    name = PLATFORM

    def __init__(self, settings: Settings, channel: ChatChannel) -> None:
        self.settings = settings
        self.channel = channel
        self._listeners: SlackListeners | None = None
        self._interactions: Interactions | None = None

    def listeners(self, interactions: Interactions) -> SlackListeners | None:
        """The Bolt listeners (built once, on the channel in place at that moment)."""
        if self._listeners is None:
            channel = self.channel
            if not isinstance(channel, SlackChannel) or not self.settings.slack.signing_secret:
                return None
            self._listeners = SlackListeners(self.settings, channel, interactions)
        self._interactions = interactions
        return self._listeners

    # -- ChatPlatform ----------------------------------------------------------

    def user_id(self, rep: RepSettings) -> str:
        return rep.slack_id

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>"

    def routes(self, interactions: Interactions) -> list[web.RouteDef]:
        listeners = self.listeners(interactions)
        return events_routes(listeners.bolt) if listeners is not None else []

    async def start(self, interactions: Interactions) -> None:
        listeners = self.listeners(interactions)
        if listeners is not None:
            await listeners.start()

    async def stop(self) -> None:
        if self._listeners is not None:
            await self._listeners.stop()
        if isinstance(self.channel, SlackChannel):
            await self.channel.close()

    async def problems(self) -> list[str]:
        return await slack_problems(self.settings)

    # -- Slack only ------------------------------------------------------------

    async def rep_for_user(self, user: str) -> str | None:
        """The rep behind a Slack user, including the profile-email match (remembered)."""
        if self._listeners is None:
            return None
        return await self._listeners.rep_for_user(user)

    async def user_for_rep(self, rep: RepSettings) -> str | None:
        """Whom to DM for a rep: ``slack_id``, a remembered identity, or ``users.lookupByEmail``
        (then remembered)."""
        if rep.slack_id:
            return rep.slack_id
        interactions = self._interactions
        if interactions is not None:
            known = await interactions.remembered_user(PLATFORM, rep.id)
            if known:
                return known
        if not rep.email or not isinstance(self.channel, SlackChannel):
            return None
        user = await self.channel.lookup_by_email(rep.email)
        if user and interactions is not None:
            await interactions.remember_identity(PLATFORM, user, rep.id)
        return user


def build_platform(settings: Settings) -> ChatPlatform | None:
    """Slack when ``[slack] bot_token`` is configured, else ``None``."""
    if not settings.slack.bot_token:
        return None
    return SlackPlatform(settings, SlackChannel.from_settings(settings.slack))


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
