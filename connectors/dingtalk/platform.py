"""``DingTalkPlatform``: the ``ChatPlatform`` for DingTalk (钉钉), built from ``[dingtalk]``.

Outbound: ``DingTalkChannel`` (cards, robot notes, DMs). Inbound: the Stream
connection (no HTTP routes, no public URL). ``claimdesk check`` asks for a token
with the configured credentials and checks the ids the cards need.
"""

from __future__ import annotations

import logging

from aiohttp import web

from config.schema import DingTalkSettings, RepSettings, Settings
from connectors.channels import DeliveryError
from connectors.dingtalk.channel import DingTalkChannel
from connectors.dingtalk.stream import Backoff, DingTalkStream
from connectors.platform import Interactions

log = logging.getLogger(__name__)


class DingTalkPlatform:
    """DingTalk: interactive cards in team groups, callbacks over Stream mode."""

    name = "dingtalk"

    def __init__(
        self,
        settings: DingTalkSettings,
        *,
        locale: str = "zh-CN",
        ack_budget: float = 1.5,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.locale = locale
        self.ack_budget = ack_budget
        self.backoff = backoff
        self.channel = DingTalkChannel.from_settings(settings)
        self.stream: DingTalkStream | None = None

    def user_id(self, rep: RepSettings) -> str:
        return rep.dingtalk_id

    def mention(self, user_id: str) -> str:
        # DingTalk mentions a user by "@<userId>" in the text (plus the at-list the
        # channel sends alongside, see DingTalkChannel.group_markdown).
        return f"@{user_id}" if user_id else ""

    def routes(self, interactions: Interactions) -> list[web.RouteDef]:
        return []  # Stream mode: callbacks arrive on the socket

    async def start(self, interactions: Interactions) -> None:
        await self.channel.api.start()
        self.stream = DingTalkStream(
            interactions,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            api_base_url=self.settings.api_base_url,
            session=lambda: self.channel.api.session,
            locale=self.locale,
            ack_budget=self.ack_budget,
            backoff=self.backoff,
        )
        await self.stream.start()

    async def stop(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None
        await self.channel.close()

    async def problems(self) -> list[str]:
        found: list[str] = []
        if not self.settings.client_secret:
            found.append(
                "[dingtalk] client_secret is empty: copy the app's ClientSecret (AppSecret) "
                "from the developer console (应用凭证)"
            )
        if not self.settings.robot_code:
            found.append(
                "[dingtalk] robot_code is empty: add the robot capability to the app and copy "
                "its RobotCode (for an internal app it is the ClientID)"
            )
        if not self.settings.card_template_id:
            found.append(
                "[dingtalk] card_template_id is empty: import connectors/dingtalk/card_template.json "
                "in the card platform (卡片平台) and copy the template id (see docs/dingtalk.md)"
            )
        if self.settings.client_secret:
            try:
                await self.channel.api.access_token(force=True)
            except DeliveryError as exc:
                hint = (
                    "check [dingtalk] client_id / client_secret"
                    if exc.permanent
                    else f"check [dingtalk] api_base_url ({self.settings.api_base_url}) is reachable"
                )
                found.append(f"[dingtalk] cannot get an access token: {exc}; {hint}")
            finally:
                await self.channel.api.stop()
        return found


def build_platform(settings: Settings) -> DingTalkPlatform | None:
    """The DingTalk platform, or ``None`` when ``[dingtalk] client_id`` is empty."""
    if not settings.dingtalk.client_id:
        return None
    locale = settings.teams[0].locale if settings.teams else "zh-CN"
    return DingTalkPlatform(settings.dingtalk, locale=locale)
