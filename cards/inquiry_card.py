"""Builds the inquiry card from a snapshot of an inquiry (no I/O, no database).

What the card shows follows DESIGN.md: status badge, customer (name, company,
flag, language, local time), subject, snippet, source, priority, age / SLA
clock, owner, and only the actions the current status allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cards.actions import Verb, encode_action
from cards.countries import flag, zone_of
from cards.model import Badge, Button, Card, CardField, Control, Option, Select
from cards.strings import duration_words, text, zoned_time
from store.lifecycle import NEEDS_REASON, allowed_moves, is_open
from store.models import Status

STATUS_COLORS: dict[str, str] = {
    "new": "#d93025",
    "claimed": "#e37400",
    "replied": "#1a73e8",
    "waiting": "#5f6368",
    "follow_up": "#9334e6",
    "won": "#188038",
    "lost": "#5f6368",
    "spam": "#5f6368",
    "closed": "#5f6368",
}
SNOOZE_CHOICES = ("1h", "4h", "1d", "3d")
# Follow-up has one way in: "Follow-up" in the status menu, with a date (the web shows a
# date field; a platform without one gets tomorrow, changeable on the inquiry page).
FOLLOW_UP_CHOICES = (
    "1d",
    "3d",
    "1w",
)  # still accepted from cards posted before (bot.usecases.card_actions)


@dataclass(frozen=True)
class InquiryView:
    """Everything a card shows, read from the store by the caller."""

    number: int
    version: int
    team: str
    status: str
    priority: str
    subject: str
    snippet: str
    source: str
    contact_name: str
    contact_email: str
    company: str
    country: str
    language: str
    received_at: datetime
    owner_name: str = ""
    claimed_at: datetime | None = None
    claim_due_at: datetime | None = None
    reply_due_at: datetime | None = None
    first_reply_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    snoozed_until: datetime | None = None
    escalation_level: int = 0
    outcome_reason: str = ""
    delivery_error: str = ""
    link_url: str = ""
    flags: tuple[str, ...] = ()  # problems found at intake (bad sender address, routing failure)
    delivery_state: str = ""  # "sending", "retrying: <server's words>" for the newest reply
    timezone: str = "UTC"  # the team's zone: due times on the card are shown in it
    follow_up_at: datetime | None = None
    lost_reasons: tuple[str, ...] = ()


def _relative(at: datetime, now: datetime, locale: str) -> str:
    delta = (now - at).total_seconds()
    if abs(delta) < 5:
        return text(locale, "time.just_now")
    words = duration_words(abs(delta), locale)
    return text(locale, "time.ago" if delta >= 0 else "time.in", duration=words)


def _clock_line(view: InquiryView, now: datetime, locale: str) -> str:
    parts = [text(locale, "age.received", ago=_relative(view.received_at, now, locale))]
    due: tuple[str, datetime | None] = ("", None)
    if view.status == Status.NEW.value:
        due = ("age.claim_due", view.claim_due_at)
    elif view.status == Status.CLAIMED.value and view.first_reply_at is None:
        due = ("age.reply_due", view.reply_due_at)
    key, when = due
    if key and when is not None:
        if when <= now:
            parts.append(
                text(
                    locale,
                    "age.overdue",
                    duration=duration_words((now - when).total_seconds(), locale),
                )
            )
        else:
            parts.append(text(locale, key, when=_relative(when, now, locale)))
    return " · ".join(parts)


def _customer(view: InquiryView, now: datetime) -> str:
    who = view.contact_name or view.contact_email or "?"
    if view.contact_name and view.contact_email:
        who = f"{view.contact_name} <{view.contact_email}>"
    extras = [e for e in (view.company, f"{flag(view.country)} {view.country}".strip()) if e]
    return " · ".join([who, *extras])


def _local_time(view: InquiryView, now: datetime) -> str:
    zone = zone_of(view.country)
    if not zone:
        return ""
    return now.astimezone(ZoneInfo(zone)).strftime("%H:%M (%a)")


def _actions(view: InquiryView, locale: str) -> tuple[Control, ...]:
    n = view.number
    controls: list[Control] = []
    status = Status(view.status)
    if status == Status.NEW:
        controls.append(
            Button(text(locale, "button.claim"), encode_action(Verb.CLAIM, n), "primary")
        )
        controls.append(Button(text(locale, "button.reply"), encode_action(Verb.REPLY, n)))
    elif is_open(status):
        controls.append(
            Button(text(locale, "button.reply"), encode_action(Verb.REPLY, n), "primary")
        )
        controls.append(Button(text(locale, "button.release"), encode_action(Verb.RELEASE, n)))
    moves = allowed_moves(status)
    if moves:
        reasons = tuple(Option(lost_reason_label(r, locale), r) for r in view.lost_reasons)
        controls.append(
            Select(
                text(locale, "select.status"),
                encode_action(Verb.STATUS, n),
                tuple(Option(text(locale, f"status.{m.value}"), m.value) for m in moves),
                reason_for=tuple(m.value for m in moves if m in NEEDS_REASON),
                reasons=reasons if Status.LOST in moves else (),
                reasons_for=(Status.LOST.value,) if Status.LOST in moves else (),
                date_for=Status.FOLLOW_UP.value if Status.FOLLOW_UP in moves else "",
            )
        )
    if is_open(status):
        controls.append(
            Select(
                text(locale, "select.snooze"),
                encode_action(Verb.SNOOZE, n),
                tuple(Option(text(locale, f"snooze.{c}"), c) for c in SNOOZE_CHOICES),
                overflow=True,
            )
        )
    if view.link_url:
        controls.append(
            Button(text(locale, "button.open"), encode_action(Verb.OPEN, n), url=view.link_url)
        )
    return tuple(controls)


def lost_reason_label(reason: str, locale: str) -> str:
    """A lost reason as reps read it: the built-in ones translated, the team's own as written."""
    key = f"lost.{reason.lower().replace(' ', '_')}"
    try:
        return text(locale, key)
    except KeyError:
        return reason


def build_inquiry_card(view: InquiryView, *, now: datetime, locale: str) -> Card:
    """The card for ``view`` as of ``now``, labelled in ``locale``."""
    fields = [CardField(text(locale, "field.customer"), _customer(view, now))]
    local = _local_time(view, now)
    if local:
        fields.append(CardField(text(locale, "field.local_time"), local))
    if view.language:
        fields.append(CardField(text(locale, "field.language"), view.language))
    fields.append(CardField(text(locale, "field.source"), view.source))
    fields.append(
        CardField(text(locale, "field.priority"), text(locale, f"priority.{view.priority}"))
    )
    fields.append(
        CardField(text(locale, "field.owner"), view.owner_name or text(locale, "owner.none"))
    )
    if view.outcome_reason:
        fields.append(CardField(text(locale, "field.reason"), view.outcome_reason))
    notes: list[str] = []
    if (
        view.last_customer_message_at
        and view.first_reply_at
        and view.last_customer_message_at > view.first_reply_at
    ):
        notes.append(
            text(
                locale,
                "note.customer_replied",
                ago=_relative(view.last_customer_message_at, now, locale),
            )
        )
    if view.snoozed_until and view.snoozed_until > now:
        notes.append(
            text(
                locale,
                "note.snoozed",
                when=zoned_time(view.snoozed_until, view.timezone),
                rel=_relative(view.snoozed_until, now, locale),
            )
        )
    if view.follow_up_at and is_open(view.status):
        notes.append(
            text(
                locale,
                "note.follow_up",
                when=zoned_time(view.follow_up_at, view.timezone),
                rel=_relative(view.follow_up_at, now, locale),
            )
        )
    if view.delivery_state == "sending":
        notes.append(text(locale, "note.sending"))
    elif view.delivery_state.startswith("retrying"):
        words = view.delivery_state.partition(": ")[2]
        notes.append(text(locale, "note.delivery_retrying", error=words))
    if view.escalation_level:
        notes.append(text(locale, "note.escalated", level=view.escalation_level))
    if view.delivery_error:
        notes.append(text(locale, "note.delivery_failed", error=view.delivery_error))
    notes.extend(text(locale, "note.flag", flag=flag) for flag in view.flags)
    return Card(
        key=str(view.number),
        version=view.version,
        title=f"#{view.number} {view.subject}".strip(),
        badge=Badge(
            view.status,
            text(locale, f"status.{view.status}"),
            STATUS_COLORS.get(view.status, "#5f6368"),
        ),
        fields=tuple(fields),
        snippet=view.snippet,
        notes=tuple(notes),
        context=_clock_line(view, now, locale),
        actions=_actions(view, locale),
        link_url=view.link_url,
        team=view.team,
        priority=view.priority,
    )
