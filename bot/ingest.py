"""Ingest: an inbound message (webhook form or email) becomes an inquiry, or joins one.

source -> dedupe (idempotency key / Message-ID) -> thread match (In-Reply-To,
References, ``[#1042]`` subject tag) -> contact -> classify -> route -> one
transaction (inquiry + message + events + outbox). Two deliveries of the same
message racing each other meet at the unique ``dedupe_key``: the loser rolls
back and answers with the winner's inquiry.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.auto_ack import acknowledge_if_closed
from bot.card_sync import queue_card_updates, queue_new_cards
from bot.context import AppContext
from bot.sla import due_after, duration, sla_for
from config.schema import TeamSettings
from routing.addresses import address_problem, normalize_address
from routing.language import detect_language
from routing.rules import RoutingDecision, RoutingInput, route
from routing.text_hygiene import clean_line, clean_text
from store import inquiries as repo
from store.engine import transaction
from store.models import AttachmentBlob, Inquiry, Lane, Message, Status

log = logging.getLogger(__name__)

_TAG = re.compile(r"\[#(\d{1,9})\]")
_SNIPPET = 280
_SUBJECT_LIMIT = 998  # RFC 5322 line length
#: Inquiry tags starting with this are problems found at intake, shown on the card.
FLAG = "flag:"


@dataclass(frozen=True)
class InboundMessage:
    """A customer message, whatever it came by."""

    source: str  # webhook or mailbox name
    source_kind: str  # "webhook" | "mail"
    dedupe_key: str
    email: str
    name: str = ""
    company: str = ""
    country: str = ""
    phone: str = ""
    language: str = ""
    subject: str = ""
    text: str = ""
    snippet: str = ""
    html: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()
    blobs: tuple[
        tuple[str, str, bytes], ...
    ] = ()  # (filename, content type, bytes) kept for download
    team: str = ""  # the source's team, used when no rule matches
    mailbox: str = ""  # the mailbox replies go out through
    fields: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # problems found at intake (set by ``normalize_inbound``)


def normalize_inbound(msg: InboundMessage) -> InboundMessage:
    """``msg`` with every customer-typed field cleaned (``routing.text_hygiene``).

    One-line fields lose control, bidi and zero-width characters; the text keeps
    its newlines. An address that is not one we can send to (a form refuses it
    earlier with a 422; mail cannot be refused) is kept out of ``email`` so no
    reply is ever built from it, and the message is flagged; what was given
    stays visible on the card's flag.
    """
    flags = list(msg.flags)
    email = normalize_address(msg.email)
    problem = address_problem(email) if email else None
    if problem:
        flags.append(f"sender address {clean_line(msg.email, limit=120)!r}: {problem}")
        email = ""
    return dataclasses.replace(
        msg,
        email=email,
        name=clean_line(msg.name, limit=200),
        company=clean_line(msg.company, limit=200),
        country=clean_line(msg.country, limit=60),
        phone=clean_line(msg.phone, limit=60),
        language=clean_line(msg.language, limit=20),
        subject=clean_line(msg.subject, limit=_SUBJECT_LIMIT),
        text=clean_text(msg.text),
        snippet=clean_line(msg.snippet),
        flags=tuple(flags),
    )


@dataclass(frozen=True)
class IngestResult:
    """What happened to an inbound message."""

    inquiry_id: int
    created: bool
    duplicate: bool = False
    threaded: bool = False


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[: _SNIPPET - 1] + "…"


class _AlreadyStored(Exception):
    """The message reached its thread by another path first (rolls the transaction back)."""

    def __init__(self, inquiry_id: int) -> None:
        super().__init__(inquiry_id)
        self.inquiry_id = inquiry_id


async def ingest(ctx: AppContext, msg: InboundMessage) -> IngestResult:
    """Store ``msg`` exactly once and queue its cards (its fields normalized first)."""
    msg = normalize_inbound(msg)
    try:
        return await _ingest_once(ctx, msg)
    except _AlreadyStored as stored:
        ctx.metrics.duplicates.labels(msg.source_kind).inc()
        return IngestResult(stored.inquiry_id, created=False, duplicate=True)
    except IntegrityError:
        # A concurrent delivery of the same message won the unique dedupe key.
        async with transaction(ctx.sessions) as session:
            existing = await repo.find_by_dedupe_key(session, msg.dedupe_key)
            if existing is None or existing.id is None:
                raise
            ctx.metrics.duplicates.labels(msg.source_kind).inc()
            return IngestResult(existing.id, created=False, duplicate=True)


async def _ingest_once(ctx: AppContext, msg: InboundMessage) -> IngestResult:
    ctx.clock()
    async with transaction(ctx.sessions) as session:
        result = await ingest_in(ctx, session, msg)
    ctx.changed.fire()
    ctx.outbox_ready.fire()
    return result


async def ingest_in(ctx: AppContext, session: Any, msg: InboundMessage) -> IngestResult:
    """The writes of ``ingest`` inside the caller's transaction (``msg`` already normalized).

    The group-committing webhook writer calls this once per message inside one
    savepoint each; the caller commits, then fires ``ctx.changed`` and
    ``ctx.outbox_ready``.
    """
    existing = await repo.find_by_dedupe_key(session, msg.dedupe_key)
    if existing is not None and existing.id is not None:
        ctx.metrics.duplicates.labels(msg.source_kind).inc()
        return IngestResult(existing.id, created=False, duplicate=True)
    if msg.message_id:
        seen = await repo.find_thread(session, [msg.message_id])
        if seen is not None and seen.id is not None:  # same mail via a second mailbox (CC)
            ctx.metrics.duplicates.labels(msg.source_kind).inc()
            return IngestResult(seen.id, created=False, duplicate=True)
    thread = await _find_thread(session, msg)
    if thread is not None:
        return await _add_to_thread(ctx, session, thread, msg)
    return await _create(ctx, session, msg)


async def _find_thread(session: Any, msg: InboundMessage) -> Inquiry | None:
    if msg.source_kind != "mail":
        return None
    found = await repo.find_thread(session, [msg.in_reply_to, *msg.references])
    if found is not None:
        return found
    tag = _TAG.search(msg.subject)
    if tag:
        try:
            candidate = await repo.get_inquiry(session, int(tag.group(1)))
        except repo.NotFound:
            return None
        if msg.email and candidate.contact_email == msg.email.lower():
            return candidate
    return None


def _message(inquiry_id: int, msg: InboundMessage, now: Any) -> Message:
    return Message(
        inquiry_id=inquiry_id,
        direction="in",
        channel="email" if msg.source_kind == "mail" else "webhook",
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to,
        references=" ".join(msg.references),
        from_address=msg.email.lower(),
        from_name=msg.name,
        subject=msg.subject,
        text=msg.text,
        html=msg.html,
        attachments=list(msg.attachments),
        created_at=now,
    )


async def _store_message(session: Any, inquiry_id: int, msg: InboundMessage, now: Any) -> Message:
    """The message row plus the bytes of its attachments (ids linked in its metadata)."""
    message = _message(inquiry_id, msg, now)
    session.add(message)
    if msg.blobs:
        await session.flush()
        assert message.id is not None
        kept: dict[str, int] = {}
        for filename, content_type, data in msg.blobs:
            blob = AttachmentBlob(
                message_id=message.id,
                filename=filename,
                content_type=content_type,
                size=len(data),
                data=data,
            )
            session.add(blob)
            await session.flush()
            assert blob.id is not None
            kept.setdefault(filename, blob.id)
        message.attachments = [
            {**a, "blob": kept[a["filename"]]} if a.get("filename") in kept else a
            for a in message.attachments
        ]
        session.add(message)
    return message


async def _create(ctx: AppContext, session: Any, msg: InboundMessage) -> IngestResult:
    now = ctx.clock()
    language = msg.language
    try:
        language = msg.language or detect_language(f"{msg.subject}\n{msg.text}")
    except Exception:  # our bug must not lose the inquiry: store it undetected
        log.exception("language detection failed", extra={"source": msg.source})
    contact = await repo.resolve_contact(
        session,
        email=msg.email,
        name=msg.name,
        company=msg.company,
        country=msg.country,
        language=language,
        phone=msg.phone,
        now=now,
    )
    contact_country = contact.country
    decision, team, claim_due, flags = _classify(ctx, msg, language, contact_country, now)
    status = Status.SPAM if decision.spam else Status.NEW
    assert contact.id is not None
    inquiry = Inquiry(
        team=team.name,
        status=status.value,
        source=msg.source,
        source_kind=msg.source_kind,
        dedupe_key=msg.dedupe_key,
        contact_id=contact.id,
        contact_email=msg.email.lower(),
        subject=msg.subject or _snippet(msg.text)[:80],
        snippet=_snippet(msg.snippet or msg.text),
        language=language,
        country=msg.country or contact_country,
        priority=decision.priority,
        tags=[*decision.tags, *(FLAG + f for f in (*msg.flags, *flags))],
        rule=decision.rule,
        suggested_owner=decision.assign,
        mailbox=msg.mailbox
        or team.mailbox
        or (ctx.settings.mailboxes[0].name if ctx.settings.mailboxes else ""),
        received_at=now,
        last_customer_message_at=now,
        claim_due_at=claim_due if status == Status.NEW else None,
        next_due_at=claim_due if status == Status.NEW else None,
        updated_at=now,
    )
    session.add(inquiry)
    await session.flush()
    assert inquiry.id is not None
    await _store_message(session, inquiry.id, msg, now)
    repo.add_event(
        session,
        inquiry,
        at=now,
        actor="customer",
        kind="received",
        after=inquiry.status,
        data={
            "source": msg.source,
            "rule": decision.rule,
            "team": team.name,
            "priority": decision.priority,
        },
    )
    if inquiry.tags and any(tag.startswith(FLAG) for tag in inquiry.tags):
        log.warning(
            "inquiry flagged at intake",
            extra={"inquiry": inquiry.id, "flags": [t for t in inquiry.tags if t.startswith(FLAG)]},
        )
    if status == Status.NEW:
        await queue_new_cards(session, ctx, inquiry)
        if not flags:  # a failed classification may be the calendar itself: no auto-reply then
            await acknowledge_if_closed(
                ctx,
                session,
                inquiry,
                customer_message_id=msg.message_id,
                references=msg.references,
                now=now,
            )
    ctx.metrics.inquiries.labels(msg.source_kind, team.name).inc()
    log.info(
        "inquiry created", extra={"inquiry": inquiry.id, "team": team.name, "source": msg.source}
    )
    return IngestResult(inquiry.id, created=True)


def _classify(
    ctx: AppContext, msg: InboundMessage, language: str, contact_country: str, now: datetime
) -> tuple[RoutingDecision, TeamSettings, datetime, list[str]]:
    """Route and compute the claim SLA; on any failure (our bug or a config the schema
    let through), the source's team or the default team, plain-time SLA, and a flag."""
    try:
        decision = route(
            ctx.settings,
            RoutingInput(
                source=msg.source,
                subject=msg.subject,
                text=msg.text,
                sender=msg.email,
                country=msg.country or contact_country,
                language=language,
            ),
            default_team=msg.team,
        )
        team = ctx.settings.team(decision.team)
        claim_due = due_after(
            team, now, sla_for(team, decision.priority).claim_within, priority=decision.priority
        )
        return decision, team, claim_due, []
    except Exception as exc:  # an inquiry is never lost to our own bug: store it, flagged
        log.exception(
            "routing failed; inquiry stored for the default team", extra={"source": msg.source}
        )
        names = {t.name for t in ctx.settings.teams}
        name = msg.team if msg.team in names else ctx.settings.fallback_team
        team = ctx.settings.team(name)
        try:
            claim_due = now + duration(team.sla.claim_within)
        except Exception:
            claim_due = now + timedelta(minutes=15)
        flag = f"routing failed ({type(exc).__name__}: {str(exc)[:160]}); sent to team {name}"
        return RoutingDecision(team=name), team, claim_due, [flag]


async def _add_to_thread(
    ctx: AppContext, session: Any, inquiry: Inquiry, msg: InboundMessage
) -> IngestResult:
    """A customer answer: attach it; an answered or waiting item goes back to its owner."""
    now = ctx.clock()
    assert inquiry.id is not None
    values: dict[str, Any] = {"last_customer_message_at": now}
    before = inquiry.status
    if inquiry.status in (
        Status.REPLIED,
        Status.WAITING,
        Status.FOLLOW_UP,
        Status.CLOSED,
        Status.WON,
        Status.LOST,
    ):
        values["status"] = Status.CLAIMED.value if inquiry.assignee else Status.NEW.value
    # The update locks the inquiry row first; only then is "is this mail stored already?"
    # final: the same answer read by a second mailbox may have been stored meanwhile.
    updated = await repo.change(session, inquiry, now, **values)
    if msg.message_id and await repo.find_thread(session, [msg.message_id]) is not None:
        raise _AlreadyStored(inquiry.id)
    await _store_message(session, inquiry.id, msg, now)
    repo.add_event(
        session,
        updated,
        at=now,
        actor="customer",
        kind="customer_replied",
        before=before,
        after=updated.status,
        data={"subject": msg.subject, "snippet": _snippet(msg.snippet or msg.text)[:200]},
    )
    owner = ctx.rep_name(updated.assignee)
    note = f"Customer replied: {_snippet(msg.snippet or msg.text)[:200]}" + (
        f" (owner: {owner})" if owner else ""
    )
    await queue_card_updates(session, ctx, updated, lane=Lane.INTERACTIVE, note=note)
    return IngestResult(inquiry.id, created=False, threaded=True)
