"""``WeComPlatform``: WeCom as a ``ChatPlatform`` (channel, callback routes, checks, mentions).

Built by ``build_platform(settings)`` when ``[wecom] corp_id`` is set. The
channel's recipients come from the config: for each team's
``destinations.wecom_chat`` the ``wecom_id`` of every rep of the team (members,
leads, managers). ``claimdesk check`` asks WeCom for a token (``corp_id`` +
``secret``) and for the agent (``agent/get``, document/path/90227).
"""

from __future__ import annotations

import logging

from aiohttp import web
from wechatpy.work.crypto import WeChatCrypto

from config.schema import RepSettings, Settings
from connectors.channels import DeliveryError
from connectors.platform import Interactions
from connectors.wecom.api import WeComApi
from connectors.wecom.channel import WeComChannel
from connectors.wecom.routes import CallbackHandler

log = logging.getLogger(__name__)


def recipients_by_chat(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Group chatid -> the ``wecom_id``s of the reps of the team(s) posting there."""
    ids = {rep.id: rep.wecom_id for rep in settings.reps if rep.wecom_id}
    out: dict[str, dict[str, None]] = {}
    for team in settings.teams:
        chat = team.destinations.wecom_chat
        if not chat:
            continue
        users = out.setdefault(chat, {})
        for rep_id in team.rep_ids():
            if rep_id in ids:
                users.setdefault(ids[rep_id], None)
    return {chat: tuple(users) for chat, users in out.items()}


class WeComPlatform:
    """WeCom: group posts + rep button cards, callbacks at ``/wecom/callback``."""

    name = "wecom"

    def __init__(self, settings: Settings, *, channel: WeComChannel | None = None) -> None:
        self._settings = settings
        w = settings.wecom
        self.api = (
            channel.api
            if channel is not None
            else WeComApi(corp_id=w.corp_id, secret=w.secret, base_url=w.api_base_url)
        )
        self.channel = channel or WeComChannel(
            self.api, agent_id=w.agent_id, recipients=recipients_by_chat(settings)
        )
        self._handler: CallbackHandler | None = None

    def user_id(self, rep: RepSettings) -> str:
        return rep.wecom_id

    def mention(self, user_id: str) -> str:
        # ``<@userid>`` mentions in markdown (group robots, document/path/91770); in an
        # appchat markdown post it shows as text at worst.
        return f"<@{user_id}>"

    def routes(self, interactions: Interactions) -> list[web.RouteDef]:
        w = self._settings.wecom
        if not (w.token and w.encoding_aes_key):
            log.warning("wecom: [wecom] token / encoding_aes_key empty: no callback route")
            return []
        self._handler = CallbackHandler(
            crypto=WeChatCrypto(w.token, w.encoding_aes_key, w.corp_id),
            token=w.token,
            channel=self.channel,
            interactions=interactions,
            locale=self._default_locale(),
        )
        return self._handler.routes()

    def _default_locale(self) -> str:
        return self._settings.teams[0].locale if self._settings.teams else "zh-CN"

    async def start(self, interactions: Interactions) -> None:
        await self.api.start()

    async def stop(self) -> None:
        if self._handler is not None:
            await self._handler.drain()
        await self.api.stop()

    async def problems(self) -> list[str]:
        w = self._settings.wecom
        found: list[str] = []
        if not w.secret:
            found.append("[wecom] secret is empty: copy the app's Secret from the admin console")
        if not w.agent_id:
            found.append("[wecom] agent_id is 0: set the app's AgentId")
        if not (w.token and w.encoding_aes_key):
            found.append(
                "[wecom] token / encoding_aes_key empty: set them as in the app's "
                "'API接收消息' settings, or clicks never reach claimdesk"
            )
        elif len(w.encoding_aes_key) != 43:
            found.append("[wecom] encoding_aes_key must be the 43 characters WeCom shows")
        if found and not w.secret:
            return found
        try:
            await self.api.token(refresh=True)
        except DeliveryError as exc:
            found.append(
                f"[wecom] corp_id / secret: gettoken failed ({exc}); check both and the "
                "app's trusted IPs (企业可信IP)"
            )
            return found
        if w.agent_id:
            try:
                await self.api.call("agent/get", params={"agentid": str(w.agent_id)})
            except DeliveryError as exc:
                found.append(f"[wecom] agent_id {w.agent_id}: agent/get failed ({exc})")
        for team in self._settings.teams:
            chat = team.destinations.wecom_chat
            if chat and not self.channel.recipients(chat):
                found.append(
                    f"teams '{team.name}': destinations.wecom_chat is set but no rep of the "
                    "team has a wecom_id: nobody gets the button cards"
                )
        return found


def build_platform(settings: Settings) -> WeComPlatform | None:
    """WeCom, or ``None`` when ``[wecom] corp_id`` is empty."""
    if not settings.wecom.corp_id:
        return None
    return WeComPlatform(settings)
