"""The read API: ``GET /api/inquiries`` and ``GET /api/inquiries/{id}`` (Bearer token)."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.context import AppContext
from bot.timeline import describe_event
from cards.actions import BadInquiryId, parse_inquiry_id
from connectors.safe_decode import ascii_header
from store import inquiries as repo
from store.engine import transaction
from store.models import Contact, Inquiry, Status


def _authorized(ctx: AppContext, request: web.Request) -> None:
    header = ascii_header(request.headers.get("Authorization", ""))
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token or not any(
        hmac.compare_digest(token.encode(), t.encode())
        for t in ctx.settings.security.api_tokens
        if t
    ):
        raise web.HTTPUnauthorized(
            text='{"error": "missing or invalid bearer token"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="claimdesk"'},
        )


def _iso(value: datetime | None) -> str | None:
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
        "received_at": _iso(inquiry.received_at),
        "claimed_at": _iso(inquiry.claimed_at),
        "first_reply_at": _iso(inquiry.first_reply_at),
        "first_response_seconds": int(
            (inquiry.first_reply_at - inquiry.received_at).total_seconds()
        )
        if inquiry.first_reply_at
        else None,
        "closed_at": _iso(inquiry.closed_at),
        "snoozed_until": _iso(inquiry.snoozed_until),
        "claim_due_at": _iso(inquiry.claim_due_at),
        "reply_due_at": _iso(inquiry.reply_due_at),
        "escalation_level": inquiry.escalation_level,
        "version": inquiry.version,
        "url": ctx.link(f"/web/inquiries/{inquiry.id}"),
    }


def api_routes(ctx: AppContext) -> list[web.RouteDef]:
    async def list_inquiries(request: web.Request) -> web.Response:
        _authorized(ctx, request)
        statuses = [s for s in request.query.get("status", "").split(",") if s]
        bad = [s for s in statuses if s not in {x.value for x in Status}]
        if bad:
            return web.json_response(
                {"error": f"unknown status {bad[0]!r}", "allowed": [x.value for x in Status]},
                status=400,
            )
        since = None
        if request.query.get("since"):
            try:
                since = datetime.fromisoformat(request.query["since"])
            except ValueError:
                return web.json_response(
                    {"error": "since must be ISO 8601, e.g. 2026-11-23T00:00:00+00:00"}, status=400
                )
            if since.tzinfo is None:
                return web.json_response(
                    {"error": "since needs a UTC offset, e.g. 2026-11-23T00:00:00+00:00"},
                    status=400,
                )
        try:
            limit = min(500, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return web.json_response({"error": "limit must be a number"}, status=400)
        async with transaction(ctx.readers) as session:
            rows = await repo.list_inquiries(
                session,
                team=request.query.get("team") or None,
                statuses=statuses,
                since=since,
                limit=limit,
            )
            contacts = await repo.contacts_by_id(session, [r.contact_id for r in rows])
        return web.json_response(
            {"inquiries": [inquiry_json(ctx, r, contacts.get(r.contact_id)) for r in rows]}
        )

    async def get_inquiry(request: web.Request) -> web.Response:
        _authorized(ctx, request)
        try:
            inquiry_id = parse_inquiry_id(request.match_info["id"])
        except BadInquiryId:
            return web.json_response(
                {"error": f"no inquiry #{request.match_info['id'][:30]}"}, status=404
            )
        async with transaction(ctx.readers) as session:
            try:
                inquiry = await repo.get_inquiry(session, inquiry_id)
            except repo.NotFound:
                return web.json_response({"error": f"no inquiry #{inquiry_id}"}, status=404)
            contact = await session.get(Contact, inquiry.contact_id)
            events = await repo.timeline(session, inquiry_id)
            messages = await repo.messages(session, inquiry_id)
        body = inquiry_json(ctx, inquiry, contact)
        locale = ctx.locale(inquiry.team)
        body["timeline"] = [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "kind": e.kind,
                "before": e.before or None,
                "after": e.after or None,
                "data": e.data,
                "summary": describe_event(e, locale, ctx.rep_name),
            }
            for e in events
        ]
        body["messages"] = [
            {
                "direction": m.direction,
                "channel": m.channel,
                "message_id": m.message_id or None,
                "in_reply_to": m.in_reply_to or None,
                "from": m.from_address,
                "to": m.to_address or None,
                "subject": m.subject,
                "text": m.text,
                "attachments": [{k: v for k, v in a.items() if k != "path"} for a in m.attachments],
                "author": m.author or None,
                "delivery": m.delivery or None,
                "at": _iso(m.created_at),
            }
            for m in messages
        ]
        return web.json_response(body)

    return [
        web.get("/api/inquiries", list_inquiries),
        web.get("/api/inquiries/{id:\\d+}", get_inquiry),
    ]
