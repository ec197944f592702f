"""The port every chat platform connector implements, and the errors deliveries raise.

The outbox worker (in ``bot``) calls these methods; a connector turns them into
its platform's API calls. Connectors never touch the database: what a post
returns (``PostedCard``) is stored by the caller as a ``CardRef``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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

    async def post_card(
        self, destination: str, card: Card, *, locale: str, idempotency_key: str = ""
    ) -> PostedCard:
        """Post a new card. ``idempotency_key`` (the outbox row's key) travels with the post
        so ``find_posted`` can recognise it later: Slack keeps it in the message's
        ``metadata``; DingTalk uses it as the card's ``outTrackId`` (idempotent by design);
        WeCom, which cannot look a post up, only posts where none was accepted before."""
        ...

    async def find_posted(
        self, destination: str, idempotency_key: str, *, since: datetime
    ) -> PostedCard | None:
        """Our own earlier post carrying ``idempotency_key``, made no earlier than ``since``
        (the first attempt), or ``None`` when the platform shows none.

        The worker calls it before posting again after an attempt whose outcome is unknown
        (a crash, a timeout, a dropped connection after the platform may have accepted
        it), so one card is never posted twice. A platform that cannot tell raises
        ``DeliveryError``; it must not answer ``None`` unless it knows nothing was posted."""
        ...

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
