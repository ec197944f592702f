"""Action ids on cards, encoded and decoded in one place, and the ``Action`` a click becomes.

An action id reads ``cd1:<verb>:<inquiry>`` (``cd1:claim:1042``); a select's
chosen value travels beside it. Platform limits are far above the length here
(Slack 255, DingTalk/WeCom 64+), and the prefix lets a connector tell our
actions from others in the same app.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

PREFIX = "cd1"
MAX_ID = 2**31 - 1  # inquiry.id is an INTEGER (32-bit on PostgreSQL): no larger id can exist
_ID = re.compile(r"[0-9]{1,10}")


class Verb(StrEnum):
    """What a person can do from a card."""

    CLAIM = "claim"
    RELEASE = "release"
    REPLY = "reply"
    STATUS = "status"
    SNOOZE = "snooze"
    REASSIGN = "reassign"
    SPAM = "spam"
    OPEN = "open"
    FOLLOW_UP = "follow_up"


class BadActionId(ValueError):
    """An action id we did not write (or a forged/garbled one)."""


class BadInquiryId(ValueError):
    """Text that cannot be an inquiry number (not ASCII digits, or beyond the database's range)."""


def parse_inquiry_id(text: str) -> int:
    """An inquiry number from untrusted text: ASCII digits only, 1 to ``MAX_ID``.

    ``int()`` alone would accept ``" 12"``, ``"1_2"``, ``"１２"`` and numbers no
    database column can hold (which then fail deep in the driver as a 500).
    """
    if not _ID.fullmatch(text) or not 0 < int(text) <= MAX_ID:
        raise BadInquiryId(f"not an inquiry number: {text[:30]!r}")
    return int(text)


def encode_action(verb: Verb, inquiry_id: int) -> str:
    return f"{PREFIX}:{verb.value}:{inquiry_id}"


def decode_action(action_id: str) -> tuple[Verb, int]:
    """The verb and inquiry of an action id; ``BadActionId`` for anything we did not write."""
    parts = action_id.split(":")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadActionId(f"not a claimdesk action id: {action_id[:80]!r}")
    try:
        return Verb(parts[1]), parse_inquiry_id(parts[2])
    except ValueError as exc:
        raise BadActionId(f"malformed claimdesk action id: {action_id[:80]!r}") from exc


@dataclass(frozen=True)
class Action:
    """A person's click, platform-neutral: who (on which platform), what, on which inquiry."""

    inquiry_id: int
    verb: Verb
    platform: str  # "web", "slack", "dingtalk", "wecom"
    user: str  # the platform's user id (the rep id on the web)
    value: str = ""  # chosen option (status, snooze duration, follow-up delay, reassignee)
    reason: str = ""  # won/lost reason
    request_id: str = ""  # platform delivery id, to drop retried callbacks
    extra: dict[str, str] = field(default_factory=dict)


def parse_action(
    action_id: str,
    *,
    platform: str,
    user: str,
    value: str = "",
    reason: str = "",
    request_id: str = "",
) -> Action:
    verb, inquiry_id = decode_action(action_id)
    return Action(
        inquiry_id=inquiry_id,
        verb=verb,
        platform=platform,
        user=user,
        value=value,
        reason=reason,
        request_id=request_id,
    )


@dataclass(frozen=True)
class ActionOutcome:
    """What to tell the person who clicked."""

    ok: bool
    message: str
    inquiry_id: int
    code: str = "ok"  # "ok", "lost_race", "forbidden", "invalid", "conflict", "not_found"
    open_url: str = ""  # for Reply/Open on surfaces that open a page
