"""The port every chat platform connector implements, and the errors deliveries raise.

The outbox worker (in ``bot``) calls these methods; a connector turns them into
its platform's API calls. Connectors never touch the database: what a post
returns (``PostedCard``) is stored by the caller as a ``CardRef``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cards.model import Card
from config.schema import TeamSettings


class DeliveryError(Exception):
    """A delivery failed. ``retry_after`` (seconds) when the platform said when to come back;
    ``permanent`` when retrying cannot help (bad channel, revoked token)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True)
class PostedCard:
    """Where a newly posted card lives (Slack ts, DingTalk outTrackId ...)."""

    ref: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pacing:
    """Minimum spacing of sends to one destination, per kind of send (seconds)."""

    post_interval: float = 0.0
    update_interval: float = 0.0


class ChatChannel(Protocol):
    """A chat platform as seen by the outbox worker."""

    name: str
    pacing: Pacing

    def destinations(self, team: TeamSettings) -> list[str]:
        """The team's destinations on this platform (channel ids); empty when not used."""
        ...

    async def post_card(self, destination: str, card: Card, *, locale: str) -> PostedCard: ...

    async def update_card(
        self, destination: str, posted: PostedCard, card: Card, *, locale: str
    ) -> PostedCard | None:
        """Re-render in place; may return a new ref (e.g. WeCom's fresh response_code)."""
        ...

    async def post_thread(
        self,
        destination: str,
        posted: PostedCard,
        text: str,
        *,
        locale: str,
        mentions: tuple[str, ...] = (),
    ) -> None:
        """A note under the card. ``mentions``: platform user ids that ``text`` mentions on
        purpose (the clock's nudges); the platform keeps those live and escapes the rest."""
        ...

    async def send_direct(
        self, user: str, card: Card | None, text: str, *, locale: str
    ) -> None: ...
