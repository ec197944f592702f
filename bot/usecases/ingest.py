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

from bot.context import AppContext
from bot.usecases.assignment import (
    BatchDraws,
    assign,
    assigned_event,
    assigned_notice,
    choose_assignee,
    claimed_values,
)
from bot.usecases.auto_ack import acknowledge_if_closed, is_closed
from bot.usecases.card_sync import new_card_rows, queue_card_updates, queue_new_cards
from bot.usecases.notices import assignee_notice_rows
from bot.usecases.sla import calendar_for, due_after, duration, sla_for
from config.schema import TeamSettings
from routing.addresses import address_problem, normalize_address
from routing.assignment import AssignmentChoice
from routing.country import CountryGuess
from routing.intake import Classification, IntakeFacts, classify
from routing.language import detect_language
from routing.rules import OpenAt, RoutingDecision
from routing.spam import SpamVerdict
from routing.text_hygiene import clean_line, clean_text
from store import assignment as store_assignment
from store import inquiries as repo
from store import outbox
from store.bulk import (
    PendingRows,
    Row,
    column_values,
    insert_many_returning_ids,
    insert_rows,
    insert_values,
)
from store.engine import transaction
from store.models import (
    AttachmentBlob,
    Contact,
    ContactEmail,
    Event,
    Inquiry,
    Lane,
    Message,
    Status,
)

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
    detected_language: str = ""  # detected before the transaction, when none was given
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
    category: str = ""  # the form's category field
    # Mail: the From header as written (``email``/``name`` are the customer's: Reply-To's
    # when it differs from From), the Sender and Reply-To headers ("Name <addr>"), and the
    # headers the spam score reads.
    from_address: str = ""
    from_name: str = ""
    sender: str = ""
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)


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
        category=clean_line(msg.category, limit=60),
        from_address=clean_line(msg.from_address, limit=320).lower(),
        from_name=clean_line(msg.from_name, limit=200),
        sender=clean_line(msg.sender, limit=400),
        reply_to=clean_line(msg.reply_to, limit=400),
        headers={k: clean_line(v, limit=1000) for k, v in msg.headers.items()},
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


@dataclass(frozen=True)
class BatchHints:
    """What a batch writer already read about a message, for the whole batch at once, in the
    same transaction (``bot.interfaces.webhook_intake``): lookups ``ingest_in`` may skip."""

    unseen: bool = False  # no inquiry has the message's dedupe key, none earlier in the batch
    new_address: bool = False  # no contact has the sender's address, none earlier in the batch
    verdicts: dict[str, str] | None = None  # ``store.assignment.sender_verdicts`` of the batch
    #: rows nothing reads back in the batch (a new contact's address): the writer inserts
    #: them with one executemany per table before its commit (``store.bulk.PendingRows``)
    pending: PendingRows | None = None


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


async def ingest_in(
    ctx: AppContext, session: Any, msg: InboundMessage, hints: BatchHints | None = None
) -> IngestResult:
    """The writes of ``ingest`` inside the caller's transaction (``msg`` already normalized).

    The group-committing webhook writer calls this once per message inside one
    savepoint each, with the ``hints`` it read for the batch; the caller commits,
    then fires ``ctx.changed`` and ``ctx.outbox_ready``.
    """
    hints = hints or BatchHints()
    existing = None if hints.unseen else await repo.find_by_dedupe_key(session, msg.dedupe_key)
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
    return await _create(ctx, session, msg, hints)


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


def _message_fields(inquiry_id: int, msg: InboundMessage, now: Any) -> dict[str, Any]:
    return dict(
        inquiry_id=inquiry_id,
        direction="in",
        channel="email" if msg.source_kind == "mail" else "webhook",
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to,
        references=" ".join(msg.references),
        from_address=msg.from_address or msg.email.lower(),
        from_name=msg.from_name if msg.from_address else msg.name,
        sender=msg.sender,
        reply_to=msg.reply_to,
        headers=dict(msg.headers),
        subject=msg.subject,
        text=msg.text,
        html=msg.html,
        attachments=list(msg.attachments),
        created_at=now,
    )


async def _store_message(session: Any, inquiry_id: int, msg: InboundMessage, now: Any) -> int:
    """The message row plus the bytes of its attachments (ids linked in its metadata)."""
    fields = _message_fields(inquiry_id, msg, now)
    if not msg.blobs:  # one Core statement (most messages): no object, no unit of work
        return await insert_values(session, *column_values(Message, **fields))
    message = Message(**fields)
    session.add(message)
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
    return message.id


async def _create(
    ctx: AppContext, session: Any, msg: InboundMessage, hints: BatchHints
) -> IngestResult:
    now = ctx.clock()
    new_address = hints.new_address and bool(msg.email)
    known = await repo.find_contact(session, msg.email) if msg.email and not new_address else None
    if hints.verdicts is not None:
        verdict = store_assignment.verdict_of(hints.verdicts, msg.email)
        if not verdict and msg.from_address and msg.from_address != msg.email:
            verdict = store_assignment.verdict_of(hints.verdicts, msg.from_address)
    else:
        verdict = await store_assignment.sender_verdict(session, msg.email)
        if not verdict and msg.from_address and msg.from_address != msg.email:
            verdict = await store_assignment.sender_verdict(session, msg.from_address)
    # an address no contact has had sent nothing before (an earlier item of the same batch
    # makes the writer pass new_address=False)
    recent = (
        0
        if new_address
        else await store_assignment.recent_from_sender(session, msg.email, now - timedelta(hours=1))
    )
    facts = _facts(msg, known.country if known else "")
    found, team, claim_due, flags = _classify(ctx, facts, now, recent, verdict)
    language, country = found.language, found.country
    contact_id = await repo.resolve_contact(
        session,
        email=msg.email,
        name=msg.name,
        company=msg.company,
        country=country.code,
        language=language,
        phone=msg.phone,
        now=now,
        known_new=new_address,
        pending=hints.pending,
    )
    status = Status.SPAM if found.is_spam else Status.NEW
    inquiry = Inquiry(
        **_inquiry_fields(ctx, msg, team, found, status, claim_due, flags, contact_id, now)
    )
    inquiry.id = number = await repo.insert_row(session, inquiry)
    await _store_message(session, number, msg, now)  # read back by the acknowledgement
    choice = None
    if status == Status.NEW and not flags:
        choice = await choose_assignee(
            ctx, session, team, language, found.decision.assign, contact_id
        )
    received = _received_fields(msg, team, found, status, choice, now)
    if hints.pending is not None:  # a batch writer's new item: no object, one Core insert now,
        # so its id comes before the ORM-added Events that follow (assignment, acknowledgement)
        await insert_rows(
            session, [column_values(Event, inquiry_id=number, team=team.name, **received)]
        )
    else:
        repo.add_event(session, inquiry, **received)
    if inquiry.tags and any(tag.startswith(FLAG) for tag in inquiry.tags):
        log.warning(
            "inquiry flagged at intake",
            extra={"inquiry": inquiry.id, "flags": [t for t in inquiry.tags if t.startswith(FLAG)]},
        )
    if status == Status.NEW:
        if not flags:  # a failed classification may be the calendar itself: no auto-reply then
            # before the assignment: the acknowledgement is for a just-created (new) inquiry
            await acknowledge_if_closed(
                ctx,
                session,
                inquiry,
                customer_message_id=msg.message_id,
                references=msg.references,
                now=now,
            )
        if choice is not None and choice.rep:
            inquiry = await assign(ctx, session, inquiry, team, choice, now)
        await queue_new_cards(session, ctx, inquiry)
    else:
        log.info(
            "inquiry held as spam",
            extra={"inquiry": inquiry.id, "score": found.spam.score, "event": received["kind"]},
        )
    ctx.metrics.inquiries.labels(msg.source_kind, team.name).inc()
    log.info("inquiry created", extra={"inquiry": number, "team": team.name, "source": msg.source})
    return IngestResult(number, created=True)


@dataclass
class PlannedInquiry:
    """A new inquiry decided without writing: its rows go in with those of the other
    planned inquiries of a batch, one statement per table (``write_planned``)."""

    msg: InboundMessage
    team: TeamSettings
    status: Status
    contact: dict[str, Any]  # Contact fields
    inquiry: dict[str, Any]  # Inquiry fields; contact_id set by ``write_planned``
    received: dict[str, Any]  # the received event's fields
    spam_score: float
    choice: AssignmentChoice | None = None  # a rep chosen: created claimed by them
    inquiry_id: int = 0  # set by ``write_planned``


async def plan_new(
    ctx: AppContext, msg: InboundMessage, hints: BatchHints, draws: BatchDraws
) -> PlannedInquiry | None:
    """``msg`` (a new webhook inquiry, its sender's address new too) planned for a batch's
    bulk write, or ``None`` when it needs the one-by-one way of ``ingest_in``: something
    to read or look up (a known sender, a thread), an out-of-hours acknowledgement, a
    flag, attachments. A rep is chosen as ``choose_assignee`` would, by ``draws``."""
    if not (hints.unseen and hints.new_address and msg.email and hints.verdicts is not None):
        return None
    if msg.source_kind == "mail" or msg.message_id or msg.blobs or msg.flags:
        return None
    now = ctx.clock()
    verdict = store_assignment.verdict_of(hints.verdicts, msg.email)
    if not verdict and msg.from_address and msg.from_address != msg.email:
        verdict = store_assignment.verdict_of(hints.verdicts, msg.from_address)
    found, team, claim_due, flags = _classify(ctx, _facts(msg, ""), now, 0, verdict)
    if flags:
        return None
    status = Status.SPAM if found.is_spam else Status.NEW
    if status == Status.NEW and team.out_of_hours_ack and is_closed(team, now):
        return None
    choice = None
    if status == Status.NEW:  # decided last: a choice drawn is a plan written
        choice = await draws.choose(team, found.language, found.decision.assign)
    inquiry = _inquiry_fields(ctx, msg, team, found, status, claim_due, flags, 0, now)
    if choice is not None and choice.rep:  # as ``assign`` changes it, at once
        inquiry.update(claimed_values(team, inquiry["priority"], choice.rep, now), version=2)
    return PlannedInquiry(
        msg=msg,
        team=team,
        status=status,
        contact=dict(
            name=msg.name,
            company=msg.company,
            country=found.country.code,
            language=found.language,
            phone=msg.phone,
            created_at=now,
            tags=[],
        ),
        inquiry=inquiry,
        received=_received_fields(msg, team, found, status, choice, now),
        spam_score=found.spam.score,
        choice=choice if choice is not None and choice.rep else None,
    )


async def write_planned(
    ctx: AppContext, session: Any, plans: list[PlannedInquiry], draws: BatchDraws
) -> None:
    """Insert the rows of ``plans`` (in order) with one statement per table; each plan's
    ``inquiry_id`` is set, and the round-robin turns ``draws`` drew for them are stored.
    The caller commits, then fires ``changed`` and ``outbox_ready``."""
    if not plans:
        return
    contact_ids = await insert_many_returning_ids(
        session, [column_values(Contact, **p.contact) for p in plans]
    )
    await insert_rows(
        session,
        [
            column_values(ContactEmail, address=p.msg.email.lower(), contact_id=contact_id)
            for p, contact_id in zip(plans, contact_ids, strict=True)
        ],
    )
    for plan, contact_id in zip(plans, contact_ids, strict=True):
        plan.inquiry["contact_id"] = contact_id
    inquiry_ids = await insert_many_returning_ids(
        session, [column_values(Inquiry, **p.inquiry) for p in plans]
    )
    rows: list[Row] = []
    events: list[Row] = []
    queued: list[dict[str, Any]] = []
    for plan, number in zip(plans, inquiry_ids, strict=True):
        plan.inquiry_id = number
        now = plan.inquiry["received_at"]
        rows.append(column_values(Message, **_message_fields(number, plan.msg, now)))
        events.append(column_values(Event, inquiry_id=number, team=plan.team.name, **plan.received))
        if plan.choice is not None:  # what ``assign`` writes, in its order
            events.append(
                column_values(
                    Event,
                    inquiry_id=number,
                    team=plan.team.name,
                    **assigned_event(plan.choice, Status.NEW.value, now),
                )
            )
            inquiry = Inquiry(**plan.inquiry, id=number)
            queued += assignee_notice_rows(
                ctx,
                inquiry,
                plan.choice.rep,
                assigned_notice(number, inquiry.subject, plan.choice),
                key=f"assigned:{number}:v{inquiry.version}",
                now=now,
            )
        if plan.status == Status.NEW:
            queued += new_card_rows(ctx, plan.team.name, number, now)
    await insert_rows(session, rows + events)  # events after: ids in the plans' order
    await outbox.enqueue_many(session, queued)
    await draws.write()
    for plan in plans:
        if plan.status != Status.NEW:
            log.info(
                "inquiry held as spam",
                extra={"inquiry": plan.inquiry_id, "score": plan.spam_score, "event": "received"},
            )
        elif plan.choice is not None:
            log.info(
                "inquiry assigned",
                extra={
                    "inquiry": plan.inquiry_id,
                    "rep": plan.choice.rep,
                    "strategy": plan.choice.strategy,
                },
            )
        ctx.metrics.inquiries.labels(plan.msg.source_kind, plan.team.name).inc()
        log.info(
            "inquiry created",
            extra={"inquiry": plan.inquiry_id, "team": plan.team.name, "source": plan.msg.source},
        )


def _inquiry_fields(
    ctx: AppContext,
    msg: InboundMessage,
    team: TeamSettings,
    found: Classification,
    status: Status,
    claim_due: datetime,
    flags: list[str],
    contact_id: int,
    now: datetime,
) -> dict[str, Any]:
    """The new inquiry's column values (its ``Inquiry`` fields)."""
    return dict(
        team=team.name,
        status=status.value,
        source=msg.source,
        source_kind=msg.source_kind,
        dedupe_key=msg.dedupe_key,
        contact_id=contact_id,
        contact_email=msg.email.lower(),
        subject=msg.subject or _snippet(msg.text)[:80],
        snippet=_snippet(msg.snippet or msg.text),
        language=found.language,
        country=found.country.code,
        country_source=found.country.source,
        category=found.category,
        priority=found.decision.priority,
        tags=[*found.decision.tags, *(FLAG + f for f in (*msg.flags, *flags))],
        rule=found.decision.rule,
        suggested_owner=found.decision.assign,
        mailbox=msg.mailbox
        or team.mailbox
        or (ctx.settings.mailboxes[0].name if ctx.settings.mailboxes else ""),
        received_at=now,
        last_customer_message_at=now,
        claim_due_at=claim_due if status == Status.NEW else None,
        next_due_at=claim_due if status == Status.NEW else None,
        closed_at=now if status == Status.SPAM else None,
        updated_at=now,
    )


def _received_fields(
    msg: InboundMessage,
    team: TeamSettings,
    found: Classification,
    status: Status,
    choice: AssignmentChoice | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``received`` event's fields (but its inquiry and team)."""
    return dict(
        at=now,
        actor="customer",
        kind="received",
        after=status.value,
        data={
            "source": msg.source,
            "rule": found.decision.rule,
            "team": team.name,
            "priority": found.decision.priority,
            "explain": found.explanation(choice),
        },
    )


def _facts(msg: InboundMessage, contact_country: str) -> IntakeFacts:
    return IntakeFacts(
        source=msg.source,
        subject=msg.subject,
        text=msg.text,
        email=msg.email,
        from_address=msg.from_address,
        reply_to=msg.email if msg.from_address and msg.from_address != msg.email else "",
        phone=msg.phone,
        country=msg.country,
        language=msg.language,
        detected_language=msg.detected_language,
        category=msg.category,
        headers=msg.headers,
        default_team=msg.team,
        contact_country=contact_country,
    )


def team_open_at(ctx: AppContext, now: datetime) -> OpenAt:
    """``open_at`` for the rules: is the named team's calendar open at ``now``?"""

    def open_at(name: str) -> bool | None:
        try:
            return calendar_for(ctx.settings.team(name)).is_open(now)
        except KeyError:
            return None

    return open_at


def _detect(text: str) -> str:
    try:
        return detect_language(text)
    except Exception:  # our bug must not lose the inquiry: store it undetected
        log.exception("language detection failed")
        return ""


def _classify(
    ctx: AppContext, facts: IntakeFacts, now: datetime, recent: int, verdict: str
) -> tuple[Classification, TeamSettings, datetime, list[str]]:
    """Classify, route and compute the claim SLA; on any failure (our bug or a config the
    schema let through), the source's team or the default team, plain-time SLA, and a flag."""
    try:
        found = classify(
            ctx.settings,
            facts,
            open_at=team_open_at(ctx, now),
            detect=_detect,
            recent_from_sender=recent,
            verdict=verdict,
        )
        decision = found.decision
        team = ctx.settings.team(decision.team)
        claim_due = due_after(
            team, now, sla_for(team, decision.priority).claim_within, priority=decision.priority
        )
        return found, team, claim_due, []
    except Exception as exc:  # an inquiry is never lost to our own bug: store it, flagged
        log.exception(
            "routing failed; inquiry stored for the default team", extra={"source": facts.source}
        )
        names = {t.name for t in ctx.settings.teams}
        name = facts.default_team if facts.default_team in names else ctx.settings.fallback_team
        team = ctx.settings.team(name)
        try:
            claim_due = now + duration(team.sla.claim_within)
        except Exception:
            claim_due = now + timedelta(minutes=15)
        flag = f"routing failed ({type(exc).__name__}: {str(exc)[:160]}); sent to team {name}"
        found = Classification(
            decision=RoutingDecision(team=name),
            language=facts.language,
            language_source="form" if facts.language else "",
            country=CountryGuess(facts.country.upper(), "form", facts.country)
            if len(facts.country) == 2
            else CountryGuess(),
            category="",
            category_source="",
            spam=SpamVerdict(0, False, ()),
        )
        return found, team, claim_due, [flag]


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
