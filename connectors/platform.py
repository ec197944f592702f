"""The contract a chat platform implements, and what it may ask of the application.

A chat platform (Slack, DingTalk, WeCom, ...) is one package in ``connectors/``
that provides a ``ChatPlatform``: its outbound ``ChatChannel`` (posting and
updating cards, thread notes, direct messages), its inbound side (HTTP routes
and/or a socket it keeps open), the problems ``claimdesk check`` reports, and how
a rep is mentioned in text. The platform never touches the database: a click
becomes a neutral ``Action`` handed to the application's ``Interactions``, and
the ``ActionOutcome`` that comes back is what the platform tells the clicker.

The application (``bot``) implements ``Interactions`` once, for every surface:
de-duplication on the platform's own delivery id, rep lookup, one authorization
check, the use case. Model: nonebot2's adapter contract
(``nonebot/internal/adapter/adapter.py``), errbot's neutral card with native renderers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from cards.actions import Action, ActionOutcome
from config.schema import RepSettings, Settings, TeamSettings
from connectors.channels import ChatChannel


@dataclass(frozen=True)
class ReplyDraftView:
    """A reply being written, as a platform's own editor shows it (Slack's modal)."""

    inquiry_id: int
    to: str
    subject: str
    body: str
    template: str
    templates: tuple[tuple[str, str], ...]  # (key, label) choices
    error: str = ""
    notice: str = ""  # e.g. "Alice owns this inquiry" shown when the editor opens
    locale: str = "en"  # the inquiry team's locale, for the editor's own labels


class Interactions(Protocol):
    """What a platform may ask of the application (implemented once, in ``bot``)."""

    async def act(self, action: Action) -> ActionOutcome:
        """Apply a click. ``action.request_id`` is the platform's own delivery id: a
        redelivery with the same id applies nothing and answers like the first one."""
        ...

    async def rep_for(self, platform: str, user: str) -> str | None:
        """The rep id behind a platform user id (``None``: not one of our reps): the id the
        platform's ``user_id(rep)`` gives from the config, else a remembered identity."""
        ...

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        """A short-lived signed link to claimdesk's reply page, signed in as ``rep_id``
        (for platforms whose cards cannot hold an editor)."""
        ...

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        """The editor's content, or a refusal (not a rep of the team, not the owner ...)."""
        ...

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        """Queue the reply email (same checks as ``act``)."""
        ...

    async def remember_identity(self, platform: str, user: str, rep_id: str) -> None:
        """Remember that ``user`` on ``platform`` is ``rep_id`` (found by a platform-side step,
        e.g. Slack's profile email), so ``rep_for`` knows it from now on, in every process."""
        ...

    async def remembered_user(self, platform: str, rep_id: str) -> str | None:
        """The platform user remembered for ``rep_id`` (whom to message), ``None`` if none."""
        ...


class ChatPlatform(Protocol):
    """One chat platform: outbound channel, inbound routes or socket, checks, mentions."""

    name: str  # registry key and ``Action.platform``: "slack", "dingtalk", "wecom"
    channel: ChatChannel

    def user_id(self, rep: RepSettings) -> str:
        """The rep's id on this platform from config (empty: none configured)."""
        ...

    def mention(self, user_id: str) -> str:
        """Text that mentions ``user_id`` live in a message on this platform."""
        ...

    def routes(self, interactions: Interactions) -> list[web.RouteDef]:
        """HTTP routes for callbacks (may be empty, e.g. DingTalk's Stream mode)."""
        ...

    async def start(self, interactions: Interactions) -> None:
        """Open sockets / streams (after the HTTP server is up). Must not block the loop."""
        ...

    async def stop(self) -> None:
        """Close everything opened by ``start`` and the channel's HTTP session."""
        ...

    async def problems(self) -> list[str]:
        """What ``claimdesk check`` reports: credentials, ids, membership — one line each,
        naming the config key and the fix. Empty when all is well."""
        ...


PlatformFactory = Callable[[Settings], "ChatPlatform | None"]
"""Builds a platform from the settings, or ``None`` when it is not configured."""


def team_destinations(platform: ChatPlatform, team: TeamSettings) -> list[str]:
    """The team's destinations on ``platform`` (empty: the team is not on it)."""
    return platform.channel.destinations(team)
