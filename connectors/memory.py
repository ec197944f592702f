"""A recording chat channel that ships with the product, for tests and dry runs.

It implements ``ChatChannel`` in memory: every call is appended to ``calls``.
It can be told to fail (``fail_next``), to fail after the post went out
(``fail_after_accept``: the ambiguous timeout) or to be slow (``delay``), which the
outbox tests use to prove retries, pacing, lane priority and idempotent posts.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cards.model import Card
from config.schema import TeamSettings
from connectors.channels import DeliveryError, Pacing, PostedCard


@dataclass
class RecordedCall:
    """One call made to the channel."""

    method: str
    destination: str
    card: Card | None
    text: str = ""
    ref: str = ""
    at: float = 0.0


@dataclass
class RecordingChannel:
    """``ChatChannel`` that records instead of sending."""

    name: str = "memory"
    pacing: Pacing = field(default_factory=Pacing)
    delay: float = 0.0
    team_destinations: dict[str, list[str]] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    fail_next: list[DeliveryError] = field(default_factory=list)
    fail_after_accept: list[DeliveryError] = field(default_factory=list)
    posted_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def destinations(self, team: TeamSettings) -> list[str]:
        return list(self.team_destinations.get(team.name, []))

    async def _call(
        self, method: str, destination: str, card: Card | None, text: str = "", ref: str = ""
    ) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.calls.append(
            RecordedCall(method, destination, card, text, ref, asyncio.get_running_loop().time())
        )

    async def post_card(
        self, destination: str, card: Card, *, locale: str, idempotency_key: str = ""
    ) -> PostedCard:
        ref = f"msg-{next(self._ids)}"
        await self._call("post_card", destination, card, ref=ref)
        if idempotency_key:
            self.posted_keys[(destination, idempotency_key)] = ref
        if self.fail_after_accept:  # the post went out, but the caller hears of a failure
            raise self.fail_after_accept.pop(0)
        return PostedCard(ref=ref)

    async def find_posted(
        self, destination: str, idempotency_key: str, *, since: datetime
    ) -> PostedCard | None:
        ref = self.posted_keys.get((destination, idempotency_key))
        return PostedCard(ref=ref) if ref else None

    async def update_card(
        self, destination: str, posted: PostedCard, card: Card, *, locale: str
    ) -> PostedCard | None:
        await self._call("update_card", destination, card, ref=posted.ref)
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
        await self._call("post_thread", destination, None, text, posted.ref)

    async def send_direct(self, user: str, card: Card | None, text: str, *, locale: str) -> None:
        await self._call("send_direct", user, card, text)

    def posted(self, method: str = "post_card") -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]
