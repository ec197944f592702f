"""Human wording of timeline events (web page, API, chat threads)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cards.inquiry_card import lost_reason_label
from cards.strings import duration_words, text, zoned_time
from routing.intake import explain_lines
from store.models import Event


def _when(value: object, zone: str) -> str:
    """A stored ISO time shown in the team's zone with the zone named."""
    try:
        return zoned_time(datetime.fromisoformat(str(value)), zone)
    except (TypeError, ValueError):
        return str(value or "")


def describe_event(
    event: Event, locale: str, rep_name: Callable[[str], str], zone: str = "UTC"
) -> str:
    """One line for an event, e.g. "claimed", "status: Claimed → Won (price ok)".

    Times are shown in ``zone`` (the team's) with the zone named; durations in words."""

    def status(value: str) -> str:
        try:
            return text(locale, f"status.{value}")
        except KeyError:
            return value

    data = event.data
    if event.kind == "received":
        why = explain_lines(data["explain"], only_matches=True) if data.get("explain") else []
        return (
            f"received via {data.get('source', '?')} → team {data.get('team', '?')}"
            + (f" (rule {data['rule']})" if data.get("rule") else "")
            + (" — " + " · ".join(why) if why else "")
        )
    if event.kind == "assigned":
        return f"assigned to {rep_name(event.after)}: {data.get('reason', '')}"
    if event.kind == "not_spam":
        return "not spam: restored" + (
            f"; {data['allowed']} allowed" if data.get("allowed") else ""
        )
    if event.kind == "claimed":
        return "claimed"
    if event.kind == "released":
        return "released to the pool"
    if event.kind == "replied":
        extra = (
            f" (first response after {duration_words(data['first_response_seconds'], locale)})"
            if "first_response_seconds" in data
            else ""
        )
        return f"replied to {data.get('to', '')}: “{data.get('quote', '')}”{extra}"
    if event.kind == "status":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        if data.get("lost_reason"):
            words = f": {data['lost_words']}" if data.get("lost_words") else ""
            reason = f" ({lost_reason_label(str(data['lost_reason']), locale)}{words})"
        return f"status: {status(event.before)} → {status(event.after)}{reason}"
    if event.kind == "snoozed":
        return f"snoozed until {_when(data.get('until'), zone)}"
    if event.kind == "reassigned":
        return f"reassigned {rep_name(event.before) or '—'} → {rep_name(event.after)}"
    if event.kind == "customer_replied":
        return f"customer replied: “{data.get('snippet', '')}”"
    if event.kind == "reply_delivered":
        first = data.get("first_response_seconds")
        return "reply accepted by the mail server" + (
            f" (first response after {duration_words(first, locale)})" if first is not None else ""
        )
    if event.kind == "delivery_retrying":
        return f"reply delivery failed — retrying: {data.get('error', '')}"
    if event.kind == "delivery_failed":
        return f"reply delivery failed: {data.get('error', '')}"
    late = " (late)" if data.get("late") else ""
    people = ", ".join(rep_name(str(r)) for r in data.get("to", []) or [])
    if event.kind == "nudged":
        return f"group nudged{late}"
    if event.kind == "escalated":
        return f"escalated to {people or 'the next level'}{late}"
    if event.kind == "reminded":
        return f"owner reminded: no reply yet{late}"
    if event.kind == "returned_to_pool":
        return f"returned to the pool: no reply in time{late}"
    if event.kind == "follow_up_set":
        return f"follow-up set for {_when(data.get('delivered_at') or data.get('at'), zone)}"
    if event.kind == "follow_up_due":
        return f"follow-up due; reminded {people}{late}"
    if event.kind == "snooze_ended":
        return f"snooze ended{late}"
    if event.kind == "handed_over":
        return f"handed over: {rep_name(event.before) or '—'} is away → {rep_name(event.after) or 'the pool'}"
    if event.kind == "auto_acknowledged":
        return f"out-of-hours acknowledgement sent to {data.get('to', 'the customer')}"
    if event.kind == "auto_ack_failed":
        return (
            f"out-of-hours acknowledgement not sent: {data.get('error', data.get('problem', ''))}"
        )
    if event.kind == "erased":
        return "personal data erased on request"
    return f"{event.kind} {event.before}→{event.after}".strip()
