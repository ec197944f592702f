"""Card actions: claim, release, status, snooze, reassign, spam — from any surface.

Flow: Action -> rep lookup (platform user -> rep) -> authorization -> atomic
change -> events + card updates in the interactive lane, one transaction.
The outcome is a short message in the team's locale for the person who
clicked ("You claimed #1042." / "Alice claimed it 3 s ago.").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.assignment import assign, choose_assignee
from bot.usecases.card_sync import queue_card_updates, queue_new_cards
from bot.usecases.follow_ups import apply_follow_up
from bot.usecases.sla import due_after, sla_for, when_open
from cards.actions import Action, ActionOutcome, Verb
from cards.inquiry_card import lost_reason_label
from cards.strings import duration_words, text, zoned_time
from store import inquiries as repo
from store.assignment import ALLOWED, BLOCKED, set_sender_verdict
from store.engine import transaction
from store.lifecycle import NEEDS_REASON, allowed_moves, is_open
from store.models import Inquiry, JobRun, Lane, Status

log = logging.getLogger(__name__)

_SNOOZE = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
}
# Follow-up choices on the card: the reminder falls that much later, moved to the team's next
# opening when that instant is out of hours (and to the customer's working hours by the clock).
_FOLLOW_UP = {
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "1w": timedelta(weeks=1),
}


class Refusal(Exception):
    """An action we decline, with the message for the person and a machine code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resolve_rep(ctx: AppContext, platform: str, user: str) -> str | None:
    """The rep id of a platform user by the ids in the config (``None``: not a rep there).

    Identities remembered in the store (Slack's profile-email match) are added by
    ``bot.interfaces.interactions.AppInteractions.rep_for``."""
    if not user:
        return None
    for rep in ctx.settings.reps:
        if rep.platform_id(platform) == user:
            return rep.id
    return None


def _roles(ctx: AppContext, team_name: str, rep_id: str) -> tuple[bool, bool]:
    """(may act on the team's items, is lead or manager)."""
    team = ctx.settings.team(team_name)
    return rep_id in team.rep_ids(), rep_id in team.leads or rep_id in team.managers


def authorize(
    ctx: AppContext,
    team_name: str,
    rep_id: str | None,
    locale: str,
    *,
    assignee: str | None = None,
    owner_only: bool = False,
) -> bool:
    """THE authorization check of every surface: a known rep, a member of the inquiry's team,
    and (``owner_only``) the owner of a claimed inquiry or a lead/manager. Returns whether
    the rep is a lead or manager; raises ``Refusal`` otherwise."""
    if rep_id is None:
        raise Refusal("forbidden", text(locale, "refuse.unknown_rep"))
    member, lead = _roles(ctx, team_name, rep_id)
    if not member:
        raise Refusal(
            "forbidden", text(locale, "refuse.not_member", team=ctx.settings.team(team_name).title)
        )
    if owner_only:
        require_owner_or_lead(ctx, assignee, rep_id, lead, locale, unclaimed_ok=True)
    return lead


def require_owner_or_lead(
    ctx: AppContext,
    owner: str | None,
    rep_id: str,
    lead: bool,
    locale: str,
    *,
    unclaimed_ok: bool,
) -> None:
    """Only the owner or a lead/manager (or anyone, on an unclaimed item, if allowed)."""
    if (owner is None and unclaimed_ok) or owner == rep_id or lead:
        return
    raise Refusal("forbidden", text(locale, "refuse.not_owner", name=ctx.rep_name(owner)))


def delivery_key(action: Action) -> str:
    """The ``job_run`` key of a platform delivery (empty: the platform gave no id)."""
    if not action.request_id:
        return ""
    return f"action:{action.platform}:{action.request_id}"[:200]


async def _replayed(ctx: AppContext, key: str, action: Action) -> ActionOutcome | None:
    """The answer recorded for an already applied delivery (``None``: none recorded)."""
    async with transaction(ctx.sessions) as session:
        seen = await session.get(JobRun, key)
    if seen is None:
        return None
    return _recorded(seen, action)


def _recorded(seen: JobRun, action: Action) -> ActionOutcome:
    detail = seen.detail or {}
    log.info("redelivered action dropped", extra={"key": seen.key, "verb": action.verb.value})
    return ActionOutcome(
        bool(detail.get("ok", False)),
        str(detail.get("message", "")),
        action.inquiry_id,
        str(detail.get("code", "duplicate")),
        open_url=str(detail.get("open_url", "")),
    )


async def perform(ctx: AppContext, action: Action, *, rep_id: str | None = None) -> ActionOutcome:
    """Apply ``action``; never raises for a person's mistake, only for bugs.

    ``rep_id``: the rep behind ``action.user`` when the caller resolved it already
    (remembered identities); else it is looked up in the config. A non-empty
    ``action.request_id`` is recorded in ``job_run`` in the same transaction as the
    change, so a redelivery (any process) applies nothing and gets the first answer.
    """
    if rep_id is None:
        rep_id = resolve_rep(ctx, action.platform, action.user)
    key = delivery_key(action)
    locale = "en"
    try:
        async with transaction(ctx.sessions) as session:
            run: JobRun | None = None
            if key:
                seen = await session.get(JobRun, key)
                if seen is not None:
                    return _recorded(seen, action)
                now = ctx.clock()
                run = JobRun(key=key, owner=action.platform, started_at=now, finished_at=now)
                session.add(run)
                await session.flush()
            try:
                inquiry = await repo.get_inquiry(session, action.inquiry_id)
            except repo.NotFound:
                raise Refusal(
                    "not_found", text(locale, "refuse.not_found", number=action.inquiry_id)
                ) from None
            locale = ctx.locale(inquiry.team)
            lead = authorize(ctx, inquiry.team, rep_id, locale)
            assert rep_id is not None
            outcome = await _dispatch(ctx, session, inquiry, action, rep_id, lead, locale)
            if run is not None:
                run.detail = {
                    "ok": outcome.ok,
                    "message": outcome.message,
                    "code": outcome.code,
                    "open_url": outcome.open_url,
                }
                session.add(run)
    except IntegrityError:
        # Another process recorded the same delivery first (the unique key): its answer.
        replayed = await _replayed(ctx, key, action) if key else None
        if replayed is None:
            raise
        return replayed
    except Refusal as refusal:
        ctx.metrics.actions.labels(action.verb.value, refusal.code).inc()
        return ActionOutcome(False, refusal.message, action.inquiry_id, refusal.code)
    except repo.Conflict:
        ctx.metrics.actions.labels(action.verb.value, "conflict").inc()
        return ActionOutcome(
            False,
            text(locale, "refuse.conflict", number=action.inquiry_id),
            action.inquiry_id,
            "conflict",
        )
    ctx.metrics.actions.labels(action.verb.value, outcome.code).inc()
    if outcome.ok:
        ctx.changed.fire()
        ctx.acted.fire()
        ctx.outbox_ready.fire()
    return outcome


@dataclass
class _Turn:
    """One action being applied: who, on what, in which transaction; the shared checks."""

    ctx: AppContext
    session: AsyncSession
    inquiry: Inquiry
    action: Action
    rep_id: str
    lead: bool
    locale: str
    now: datetime

    @property
    def number(self) -> int:
        assert self.inquiry.id is not None
        return self.inquiry.id

    def t(self, key: str, **params: object) -> str:
        return text(self.locale, key, **params)

    def bad_move(self, after_label: str, before: str | None = None) -> Refusal:
        before_label = self.t(f"status.{self.inquiry.status}") if before is None else before
        return Refusal(
            "invalid",
            self.t("refuse.bad_move", number=self.number, before=before_label, after=after_label),
        )

    def require_owner_or_lead(self, *, unclaimed_ok: bool) -> None:
        """Only the owner or a lead/manager (or anyone, on an unclaimed item, if allowed)."""
        require_owner_or_lead(
            self.ctx,
            self.inquiry.assignee,
            self.rep_id,
            self.lead,
            self.locale,
            unclaimed_ok=unclaimed_ok,
        )

    def require_open(self, after_label: str) -> None:
        if not is_open(self.inquiry.status):
            raise self.bad_move(after_label)

    async def commit(
        self,
        values: dict[str, Any],
        *,
        kind: str,
        note: str,
        before: str = "",
        after: str = "",
        data: dict[str, Any] | None = None,
    ) -> Inquiry:
        """Compare-and-set the change, write its event and queue the card updates (interactive lane)."""
        updated = await repo.change(self.session, self.inquiry, self.now, **values)
        repo.add_event(
            self.session,
            updated,
            at=self.now,
            actor=self.rep_id,
            kind=kind,
            before=before,
            after=after,
            data=data or {},
        )
        await queue_card_updates(self.session, self.ctx, updated, lane=Lane.INTERACTIVE, note=note)
        return updated

    def done(self, key: str, **params: object) -> ActionOutcome:
        return ActionOutcome(True, self.t(key, number=self.number, **params), self.number)

    @property
    def actor_name(self) -> str:
        return self.ctx.rep_name(self.rep_id)


async def _dispatch(
    ctx: AppContext,
    session: AsyncSession,
    inquiry: Inquiry,
    action: Action,
    rep_id: str,
    lead: bool,
    locale: str,
) -> ActionOutcome:
    handler = _HANDLERS.get(action.verb)
    if handler is None:
        raise Refusal("invalid", f"unsupported action {action.verb.value}")
    return await handler(_Turn(ctx, session, inquiry, action, rep_id, lead, locale, ctx.clock()))


async def _claim(turn: _Turn) -> ActionOutcome:
    ctx, now, number = turn.ctx, turn.now, turn.number
    claim = await repo.claim(turn.session, number, turn.rep_id, now)
    current = claim.inquiry
    if not claim.won:
        if current.assignee == turn.rep_id:
            return turn.done("outcome.claimed")
        if current.assignee and current.claimed_at:
            ago = turn.t(
                "time.ago",
                duration=duration_words((now - current.claimed_at).total_seconds(), turn.locale),
            )
            message = turn.t("outcome.claimed_by", name=ctx.rep_name(current.assignee), ago=ago)
        else:
            message = turn.t(
                "refuse.bad_move",
                number=number,
                before=turn.t(f"status.{current.status}"),
                after=turn.t("status.claimed"),
            )
        return ActionOutcome(False, message, number, "lost_race")
    team = ctx.settings.team(current.team)
    reply_due = due_after(
        team, now, sla_for(team, current.priority).first_reply_within, priority=current.priority
    )
    turn.inquiry = current
    await turn.commit(
        {"reply_due_at": reply_due, "next_due_at": reply_due, "claim_due_at": None},
        kind="claimed",
        before=Status.NEW.value,
        after=Status.CLAIMED.value,
        note=f"{turn.actor_name} claimed #{number}",
    )
    return turn.done("outcome.claimed")


async def _open_page(turn: _Turn) -> ActionOutcome:
    number = turn.number
    path = (
        f"/web/inquiries/{number}/reply"
        if turn.action.verb == Verb.REPLY
        else f"/web/inquiries/{number}"
    )
    return ActionOutcome(True, "", number, open_url=turn.ctx.link(path))


async def _release(turn: _Turn) -> ActionOutcome:
    inquiry = turn.inquiry
    if inquiry.status == Status.NEW.value:
        raise Refusal("invalid", turn.t("outcome.released", number=turn.number))
    turn.require_owner_or_lead(unclaimed_ok=False)
    turn.require_open(turn.t("status.new"))
    team = turn.ctx.settings.team(inquiry.team)
    due = due_after(
        team, turn.now, sla_for(team, inquiry.priority).claim_within, priority=inquiry.priority
    )
    await turn.commit(
        {
            "status": Status.NEW.value,
            "assignee": None,
            "claim_due_at": due,
            "reply_due_at": None,
            "next_due_at": due,
        },
        kind="released",
        before=inquiry.status,
        after=Status.NEW.value,
        note=f"{turn.actor_name} released #{turn.number}",
    )
    return turn.done("outcome.released")


def _follow_up_at(turn: _Turn, choice: str) -> datetime:
    """When a follow-up chosen as ``1d``/``3d``/``1w`` or a date ``YYYY-MM-DD`` falls: a date
    means the team's first working moment that day (or after); empty means tomorrow."""
    team = turn.ctx.settings.team(turn.inquiry.team)
    choice = choice.strip() or "1d"
    if choice in _FOLLOW_UP:
        return when_open(team, turn.now + _FOLLOW_UP[choice])
    zone = ZoneInfo(team.timezone)
    try:
        day = date.fromisoformat(choice)
    except ValueError:
        raise Refusal("invalid", turn.t("refuse.follow_up_date")) from None
    today = turn.now.astimezone(zone).date()
    if not today < day <= today + timedelta(days=366):
        raise Refusal("invalid", turn.t("refuse.follow_up_date"))
    return when_open(team, datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC))


def _lost_reason(turn: _Turn, reason: str) -> tuple[str, str]:
    """(the team's listed reason, the rep's words) from ``"price: too high"`` / ``"price"`` /
    free text (which counts as "other")."""
    listed = turn.ctx.settings.team(turn.inquiry.team).lost_reasons
    head, sep, rest = reason.partition(":")
    for entry in listed:
        if entry.lower() == head.strip().lower():
            return entry, rest.strip() if sep else ""
        if entry.lower() == reason.strip().lower():
            return entry, ""
    other = next((r for r in listed if r.lower() == "other"), "other")
    return other, reason.strip()


async def _set_status(turn: _Turn) -> ActionOutcome:
    inquiry, action, now = turn.inquiry, turn.action, turn.now
    target_value = Status.SPAM.value if action.verb == Verb.SPAM else action.value
    target_value, _, follow_choice = target_value.partition(":")
    try:
        target = Status(target_value)
    except ValueError:
        raise turn.bad_move(target_value, before=inquiry.status) from None
    if target == Status.FOLLOW_UP:
        return await _follow_up_on(turn, follow_choice or action.extra.get("date", ""))
    turn.require_owner_or_lead(unclaimed_ok=True)
    label = turn.t(f"status.{target.value}")
    if target not in allowed_moves(inquiry.status):
        raise turn.bad_move(label)
    if inquiry.status == Status.SPAM.value and target == Status.NEW:
        return await _not_spam(turn)
    reason = action.reason.strip()[:500]
    data: dict[str, Any] = {}
    if target == Status.LOST and reason:
        code, words = _lost_reason(turn, reason)
        if code.lower() == "other" and not words:
            raise Refusal("invalid", turn.t("refuse.needs_reason", status=label))
        data = {"reason": words or code, "lost_reason": code, "lost_words": words}
        shown = lost_reason_label(code, turn.locale)
        reason = f"{shown}: {words}" if words else shown
    elif reason:
        data = {"reason": reason}
    if target in NEEDS_REASON and not reason:
        raise Refusal("invalid", turn.t("refuse.needs_reason", status=label))
    values: dict[str, Any] = {"status": target.value, "outcome_reason": reason}
    if target in (Status.WON, Status.LOST, Status.SPAM, Status.CLOSED):
        values.update(closed_at=now, next_due_at=None, claim_due_at=None, reply_due_at=None)
    elif target == Status.CLAIMED:  # reopened: whoever reopens an unowned item owns it
        values.update(closed_at=None, **({} if inquiry.assignee else {"assignee": turn.rep_id}))
    elif target == Status.NEW:
        values.update(assignee=None, closed_at=None)
    if target == Status.SPAM and inquiry.contact_email:
        # "Spam" teaches the intake: this sender (value "domain": the whole domain,
        # except free-mail domains, shared by everyone) is held as spam from now on.
        whole = action.value == "domain" and not _shared_domain(inquiry.contact_email)
        data["blocked"] = await set_sender_verdict(
            turn.session,
            inquiry.contact_email,
            BLOCKED,
            whole_domain=whole,
            by=turn.rep_id,
            inquiry_id=turn.number,
            now=now,
        )
    await turn.commit(
        values,
        kind="status",
        before=inquiry.status,
        after=target.value,
        data=data,
        note=f"{turn.actor_name}: {label}" + (f" ({reason})" if reason else ""),
    )
    return turn.done("outcome.status", status=label)


# Domains shared by unrelated people: "Spam" on one of their senders blocks the address only.
_FREE_MAIL = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "foxmail.com",
        "naver.com",
        "protonmail.com",
        "proton.me",
    ]
)


def _shared_domain(address: str) -> bool:
    return address.rpartition("@")[2].lower() in _FREE_MAIL


async def _not_spam(turn: _Turn) -> ActionOutcome:
    """Held spam restored: new again, its sender allowed from now on, routed to a rep by
    the team's strategy when it assigns, and its card posted (or updated) everywhere."""
    ctx, inquiry, now = turn.ctx, turn.inquiry, turn.now
    team = ctx.settings.team(inquiry.team)
    due = due_after(
        team, now, sla_for(team, inquiry.priority).claim_within, priority=inquiry.priority
    )
    allowed = ""
    if inquiry.contact_email:
        allowed = await set_sender_verdict(
            turn.session,
            inquiry.contact_email,
            ALLOWED,
            by=turn.rep_id,
            inquiry_id=turn.number,
            now=now,
        )
    updated = await repo.change(
        turn.session,
        inquiry,
        now,
        status=Status.NEW.value,
        assignee=None,
        closed_at=None,
        outcome_reason="",
        claim_due_at=due,
        next_due_at=due,
    )
    repo.add_event(
        turn.session,
        updated,
        at=now,
        actor=turn.rep_id,
        kind="not_spam",
        before=Status.SPAM.value,
        after=Status.NEW.value,
        data={"allowed": allowed},
    )
    choice = await choose_assignee(
        ctx, turn.session, team, updated.language, updated.suggested_owner, updated.contact_id
    )
    if choice.rep:
        updated = await assign(ctx, turn.session, updated, team, choice, now)
    await queue_new_cards(turn.session, ctx, updated)  # a card never posted while it was spam
    await queue_card_updates(
        turn.session, ctx, updated, lane=Lane.INTERACTIVE, note=f"{turn.actor_name}: not spam"
    )
    return turn.done("outcome.status", status=turn.t(f"status.{updated.status}"))


async def _snooze(turn: _Turn) -> ActionOutcome:
    span = _SNOOZE.get(turn.action.value)
    if span is None:
        raise Refusal(
            "invalid", f"unknown snooze {turn.action.value!r}; choose one of {', '.join(_SNOOZE)}"
        )
    turn.require_owner_or_lead(unclaimed_ok=True)
    turn.require_open(turn.t("select.snooze"))
    until = turn.now + span
    when = zoned_time(until, turn.ctx.settings.team(turn.inquiry.team).timezone)
    await turn.commit(
        {"snoozed_until": until, "next_due_at": until},
        kind="snoozed",
        data={"until": until.isoformat()},
        note=f"{turn.actor_name} snoozed #{turn.number} until {when}",
    )
    return turn.done("outcome.snoozed", when=when)


async def _follow_up(turn: _Turn) -> ActionOutcome:
    """The follow-up menu of cards posted before it moved into the status menu."""
    if turn.action.value not in _FOLLOW_UP:
        raise Refusal(
            "invalid",
            f"unknown follow-up {turn.action.value!r}; choose one of {', '.join(_FOLLOW_UP)}",
        )
    return await _follow_up_on(turn, turn.action.value)


async def _follow_up_on(turn: _Turn, choice: str) -> ActionOutcome:
    """Status "Follow-up" with its date (``1d``/``3d``/``1w``, ``YYYY-MM-DD``, empty: tomorrow)."""
    inquiry = turn.inquiry
    turn.require_owner_or_lead(unclaimed_ok=True)
    if inquiry.status != Status.FOLLOW_UP.value and Status.FOLLOW_UP not in allowed_moves(
        inquiry.status
    ):
        raise turn.bad_move(turn.t("status.follow_up"))
    at = _follow_up_at(turn, choice)
    _updated, when = await apply_follow_up(
        turn.ctx, turn.session, inquiry, turn.rep_id, at, turn.now, status=Status.FOLLOW_UP.value
    )
    return turn.done("clock.follow_up_set", when=when)


async def _reassign(turn: _Turn) -> ActionOutcome:
    ctx, inquiry, action = turn.ctx, turn.inquiry, turn.action
    if not turn.lead:
        raise Refusal("forbidden", turn.t("refuse.not_lead"))
    target_rep = resolve_rep(ctx, action.platform, action.value) or (
        action.value if ctx.settings.rep(action.value) else None
    )
    if target_rep is None or not _roles(ctx, inquiry.team, target_rep)[0]:
        raise Refusal(
            "invalid", turn.t("refuse.not_member", team=ctx.settings.team(inquiry.team).title)
        )
    turn.require_open(turn.t("status.claimed"))
    status = Status.CLAIMED.value if inquiry.status == Status.NEW.value else inquiry.status
    name = ctx.rep_name(target_rep)
    await turn.commit(
        {
            "assignee": target_rep,
            "status": status,
            "claimed_at": inquiry.claimed_at or turn.now,
            "claim_due_at": None,
            "escalation_level": 0,  # a lead acted on it: off the escalated view
        },
        kind="reassigned",
        before=inquiry.assignee or "",
        after=target_rep,
        note=f"{turn.actor_name} reassigned #{turn.number} to {name}",
    )
    return turn.done("outcome.reassigned", name=name)


_HANDLERS: dict[Verb, Callable[[_Turn], Awaitable[ActionOutcome]]] = {
    Verb.CLAIM: _claim,
    Verb.REPLY: _open_page,
    Verb.OPEN: _open_page,
    Verb.RELEASE: _release,
    Verb.STATUS: _set_status,
    Verb.SPAM: _set_status,
    Verb.SNOOZE: _snooze,
    Verb.FOLLOW_UP: _follow_up,
    Verb.REASSIGN: _reassign,
}
