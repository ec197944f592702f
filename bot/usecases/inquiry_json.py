"""An inquiry as JSON, as the API and the data-protection export show it (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.context import AppContext
from store.models import Contact, Inquiry


def iso(value: datetime | None) -> str | None:
    """An aware instant as ISO 8601, or None."""
    return value.isoformat() if value else None


def inquiry_json(ctx: AppContext, inquiry: Inquiry, contact: Contact | None) -> dict[str, Any]:
    return {
        "id": inquiry.id,
        "number": f"#{inquiry.id}",
        "team": inquiry.team,
        "status": inquiry.status,
        "priority": inquiry.priority,
        "source": inquiry.source,
        "subject": inquiry.subject,
        "snippet": inquiry.snippet,
        "language": inquiry.language,
        "country": inquiry.country,
        "country_source": inquiry.country_source,
        "category": inquiry.category,
        "rule": inquiry.rule,
        "tags": inquiry.tags,
        "assignee": inquiry.assignee,
        "assignee_name": ctx.rep_name(inquiry.assignee) or None,
        "outcome_reason": inquiry.outcome_reason or None,
        "contact": {
            "id": inquiry.contact_id,
            "name": contact.name if contact else "",
            "email": inquiry.contact_email,
            "company": contact.company if contact else "",
            "country": contact.country if contact else "",
        },
        "received_at": iso(inquiry.received_at),
        "claimed_at": iso(inquiry.claimed_at),
        "first_reply_at": iso(inquiry.first_reply_at),
        "first_response_seconds": int(
            (inquiry.first_reply_at - inquiry.received_at).total_seconds()
        )
        if inquiry.first_reply_at
        else None,
        "closed_at": iso(inquiry.closed_at),
        "snoozed_until": iso(inquiry.snoozed_until),
        "claim_due_at": iso(inquiry.claim_due_at),
        "reply_due_at": iso(inquiry.reply_due_at),
        "escalation_level": inquiry.escalation_level,
        "version": inquiry.version,
        "url": ctx.link(f"/web/inquiries/{inquiry.id}"),
    }
