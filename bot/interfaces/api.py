"""The read API: ``GET /api/inquiries`` and ``GET /api/inquiries/{id}`` (Bearer token)."""

from __future__ import annotations

import hmac
from datetime import datetime

from aiohttp import web

from bot.context import AppContext
from bot.usecases.inquiry_json import inquiry_json, iso
from bot.usecases.timeline import describe_event
from cards.actions import BadInquiryId, parse_inquiry_id
from connectors.safe_decode import ascii_header
from store import inquiries as repo
from store.engine import transaction
from store.models import Contact, Status


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
                "at": iso(e.at),
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
                "at": iso(m.created_at),
            }
            for m in messages
        ]
        return web.json_response(body)

    return [
        web.get("/api/inquiries", list_inquiries),
        web.get("/api/inquiries/{id:\\d+}", get_inquiry),
    ]
