"""The card that goes with an escalation or reminder DM: the inquiry, why it came, Claim / Reassign.

Built from the same ``InquiryView`` as the group card, so it shows the current
state when it is delivered (an item claimed meanwhile shows its owner and no
Claim button). Reassign is a select of the team's reps on duty; whether the
person pressing it may reassign is decided when it is pressed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cards.actions import Verb, encode_action
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Button, Card, Control, Option, Select
from cards.strings import text
from store.lifecycle import is_open
from store.models import Status


def build_escalation_card(
    view: InquiryView,
    *,
    now: datetime,
    locale: str,
    headline: str,
    members: tuple[Option, ...] = (),
) -> Card:
    """The inquiry card for a DM: ``headline`` first, then Claim (if unclaimed), Reassign, Open."""
    base = build_inquiry_card(view, now=now, locale=locale)
    n = view.number
    controls: list[Control] = []
    if view.status == Status.NEW.value:
        controls.append(
            Button(text(locale, "button.claim"), encode_action(Verb.CLAIM, n), "primary")
        )
    if is_open(view.status) and members:
        controls.append(
            Select(text(locale, "button.reassign"), encode_action(Verb.REASSIGN, n), members)
        )
    if view.status != Status.NEW.value and is_open(view.status):
        controls.append(Button(text(locale, "button.reply"), encode_action(Verb.REPLY, n)))
    if view.link_url:
        controls.append(
            Button(text(locale, "button.open"), encode_action(Verb.OPEN, n), url=view.link_url)
        )
    notes = (headline, *base.notes) if headline else base.notes
    return replace(base, key=f"escalation:{n}", notes=notes, actions=tuple(controls))
