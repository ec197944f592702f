"""What every use case needs, built once per process: settings, database, clock, channels.

Use cases take an ``AppContext`` explicitly (no globals), so tests build one
with their own clock, database and recording channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import Metrics
from config.schema import Settings
from connectors.channels import ChatChannel
from connectors.platform import ChatPlatform
from store.engine import SessionFactory
from store.types import utcnow

Clock = Callable[[], datetime]


@dataclass
class Wakeup:
    """A level-triggered nudge: "something changed, look now" for the worker and the live feed."""

    _events: list[asyncio.Event] = field(default_factory=list)

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        if event in self._events:
            self._events.remove(event)

    def fire(self) -> None:
        for event in self._events:
            event.set()


@dataclass
class AppContext:
    """Shared, long-lived dependencies of the use cases."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    clock: Clock = utcnow
    channels: dict[str, ChatChannel] = field(default_factory=dict)
    platforms: dict[str, ChatPlatform] = field(default_factory=dict)  # chat platforms by name
    metrics: Metrics = field(default_factory=Metrics)
    changed: Wakeup = field(default_factory=Wakeup)
    acted: Wakeup = field(default_factory=Wakeup)  # a person's action committed (with changed)
    outbox_ready: Wakeup = field(default_factory=Wakeup)
    read_sessions: SessionFactory | None = None  # SQLite: deferred transactions for pure reads

    @property
    def readers(self) -> SessionFactory:
        """Sessions for read-only work (never take SQLite's write lock)."""
        return self.read_sessions or self.sessions

    def rep_name(self, rep_id: str | None) -> str:
        if not rep_id:
            return ""
        rep = self.settings.rep(rep_id)
        return rep.name if rep else rep_id

    def locale(self, team: str) -> str:
        try:
            return self.settings.team(team).locale
        except KeyError:
            return "en"

    def link(self, path: str) -> str:
        return self.settings.server.base_url + path

    def mention(self, platform: str, rep_id: str) -> str:
        """A live mention of the rep on ``platform`` where its id there is known, else ``@Name``."""
        rep = self.settings.rep(rep_id)
        if rep is None:
            return f"@{rep_id}"
        chat = self.platforms.get(platform)
        user = chat.user_id(rep) if chat is not None else ""
        return chat.mention(user) if chat is not None and user else f"@{rep.name}"
