"""Action ids on cards, encoded and decoded in one place, and the ``Action`` a click becomes.

An action id reads ``cd1:<verb>:<inquiry>`` (``cd1:claim:1042``); a select's
chosen value travels beside it. Platform limits are far above the length here
(Slack 255, DingTalk/WeCom 64+), and the prefix lets a connector tell our
actions from others in the same app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

PREFIX = "cd1"


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


def encode_action(verb: Verb, inquiry_id: int) -> str:
    return f"{PREFIX}:{verb.value}:{inquiry_id}"


def decode_action(action_id: str) -> tuple[Verb, int]:
    parts = action_id.split(":")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadActionId(f"not a claimdesk action id: {action_id[:80]!r}")
    try:
        return Verb(parts[1]), int(parts[2])
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
