"""A status select as one flat list of choices, for surfaces whose selects hold no text box.

The web inbox shows the team's lost reasons and a text box beside the status menu. A chat
select (Slack, WeCom, DingTalk) cannot, so each listed lost reason becomes a choice of its
own ("Lost: Price" = ``lost|price``) and a choice that needs the rep's words (won, lost
"other") is written ``won|?``: Slack opens a small form for it; WeCom and DingTalk cannot,
so the application answers that it needs a reason and links the inquiry's page.
``split_status_value`` reads a chosen value back.
"""

from __future__ import annotations

import dataclasses

from cards.actions import Action, Verb
from cards.model import Option, Select

#: The reason part of a choice that needs the rep's own words.
ASK = "?"


def status_choices(control: Select) -> list[Option]:
    """``control``'s options with its listed reasons spread out, in the order of the moves."""
    out: list[Option] = []
    for option in control.options:
        if option.value in control.reasons_for and control.reasons:
            out.extend(
                Option(
                    f"{option.label}: {r.label}",
                    f"{option.value}|{ASK if r.value.lower() == 'other' else r.value}",
                )
                for r in control.reasons
            )
        elif option.value in control.reason_for:
            out.append(Option(option.label, f"{option.value}|{ASK}"))
        else:
            out.append(option)
    return out


def split_status_value(value: str) -> tuple[str, str, bool]:
    """A status choice's value as (status, listed reason, ask for words): ``"lost|price"`` ->
    ``("lost", "price", False)``, ``"won|?"`` -> ``("won", "", True)``, ``"claimed"`` ->
    ``("claimed", "", False)``."""
    status, sep, reason = value.partition("|")
    if not sep:
        return value, "", False
    return status, "" if reason == ASK else reason, reason == ASK


def with_listed_reason(action: Action) -> Action:
    """A status action whose value is a chat choice (``lost|price``, ``won|?``) as the status
    and its listed reason (none for ``?``: the application then asks for one)."""
    if action.verb is not Verb.STATUS or "|" not in action.value:
        return action
    status, reason, _ask = split_status_value(action.value)
    return dataclasses.replace(action, value=status, reason=action.reason or reason)
