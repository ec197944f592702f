"""The platform-neutral card: what every renderer (web, Slack, DingTalk, WeCom) draws.

A card is the same for everyone who sees it (chat platforms show one shared
message); who may press which button is decided when it is pressed.
All text here is plain text: each renderer escapes it for its platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ButtonStyle = Literal["primary", "danger", "default"]


@dataclass(frozen=True)
class CardField:
    """A labelled value (customer, source, owner ...)."""

    label: str
    value: str


@dataclass(frozen=True)
class Option:
    """One choice of a select or overflow menu."""

    label: str
    value: str


@dataclass(frozen=True)
class Button:
    """A button; ``url`` makes it a link instead of an action."""

    label: str
    action_id: str
    style: ButtonStyle = "default"
    url: str = ""


@dataclass(frozen=True)
class Select:
    """A drop-down (status) or overflow menu (snooze)."""

    placeholder: str
    action_id: str
    options: tuple[Option, ...]
    overflow: bool = False
    # Extras a renderer with a form may show (the web inbox); others may ignore them: the
    # server asks for what is missing. ``reason_for``: values that need a reason (won/lost);
    # ``reasons``: the team's list of lost reasons offered for ``reasons_for``;
    # ``date_for``: the value that takes a date (follow-up).
    reason_for: tuple[str, ...] = ()
    reasons: tuple[Option, ...] = ()
    reasons_for: tuple[str, ...] = ()
    date_for: str = ""


Control = Button | Select


@dataclass(frozen=True)
class Badge:
    """The status badge: the machine status, its label in the team's locale and a colour."""

    status: str
    label: str
    color: str


@dataclass(frozen=True)
class Card:
    """An inquiry card (or an escalation/digest card) ready for any renderer."""

    key: str  # stable id of what the card shows, e.g. "1042"
    version: int
    title: str  # "#1042 Inquiry about 40HQ containers"
    badge: Badge
    fields: tuple[CardField, ...] = ()
    snippet: str = ""
    notes: tuple[str, ...] = ()  # "Customer replied 5 min ago", "Escalated to 李经理"
    context: str = ""  # footer line: source, received time, SLA clock
    actions: tuple[Control, ...] = ()
    link_url: str = ""
    team: str = ""
    priority: str = "normal"
    mentions: tuple[str, ...] = field(default=())  # rep ids to mention (nudges)
