"""Human wording of timeline events (web page, API, chat threads)."""

from __future__ import annotations

from collections.abc import Callable

from cards.strings import text
from store.models import Event


def describe_event(event: Event, locale: str, rep_name: Callable[[str], str]) -> str:
    """One line for an event, e.g. "claimed", "status: Claimed → Won (price ok)"."""

    def status(value: str) -> str:
        try:
            return text(locale, f"status.{value}")
        except KeyError:
            return value

    data = event.data
    if event.kind == "received":
        return f"received via {data.get('source', '?')} → team {data.get('team', '?')}" + (
            f" (rule {data['rule']})" if data.get("rule") else ""
        )
    if event.kind == "claimed":
        return "claimed"
    if event.kind == "released":
        return "released to the pool"
    if event.kind == "replied":
        extra = (
            f" (first response after {int(data['first_response_seconds'])} s)"
            if "first_response_seconds" in data
            else ""
        )
        return f"replied to {data.get('to', '')}: “{data.get('quote', '')}”{extra}"
    if event.kind == "status":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"status: {status(event.before)} → {status(event.after)}{reason}"
    if event.kind == "snoozed":
        return f"snoozed until {data.get('until', '')}"
    if event.kind == "reassigned":
        return f"reassigned {rep_name(event.before) or '—'} → {rep_name(event.after)}"
    if event.kind == "customer_replied":
        return f"customer replied: “{data.get('snippet', '')}”"
    if event.kind == "delivery_failed":
        return f"reply delivery failed: {data.get('error', '')}"
    return f"{event.kind} {event.before}→{event.after}".strip()
