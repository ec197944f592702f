"""Card actions: claim, release, status, snooze, reassign, spam — from any surface.

Flow: Action -> rep lookup (platform user -> rep) -> authorization -> atomic
change -> events + card updates in the interactive lane, one transaction.
The outcome is a short message in the team's locale for the person who
clicked ("You claimed #1042." / "Alice claimed it 3 s ago.").
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.card_sync import queue_card_updates
from bot.clock import apply_follow_up
from bot.context import AppContext
from bot.sla import due_after, sla_for, when_open
from cards.actions import Action, ActionOutcome, Verb
from cards.strings import duration_words, text
from store import inquiries as repo
from store.engine import transaction
from store.lifecycle import NEEDS_REASON, allowed_moves, is_open
from store.models import Inquiry, Lane, Status

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
    """The rep id of a platform user (``None``: not a rep)."""
    for rep in ctx.settings.reps:
        if platform == "web" and rep.id == user:
            return rep.id
        if getattr(rep, f"{platform}_id", None) == user and user:
            return rep.id
    return None


def _roles(ctx: AppContext, team_name: str, rep_id: str) -> tuple[bool, bool]:
    """(may act on the team's items, is lead or manager)."""
    team = ctx.settings.team(team_name)
    return rep_id in team.rep_ids(), rep_id in team.leads or rep_id in team.managers


async def perform(ctx: AppContext, action: Action) -> ActionOutcome:
    """Apply ``action``; never raises for a person's mistake, only for bugs."""
    rep_id = resolve_rep(ctx, action.platform, action.user)
    locale = "en"
    try:
        async with transaction(ctx.sessions) as session:
            try:
                inquiry = await repo.get_inquiry(session, action.inquiry_id)
            except repo.NotFound:
                raise Refusal(
                    "not_found", text(locale, "refuse.not_found", number=action.inquiry_id)
                ) from None
            locale = ctx.locale(inquiry.team)
            if rep_id is None:
                raise Refusal("forbidden", text(locale, "refuse.unknown_rep"))
            member, lead = _roles(ctx, inquiry.team, rep_id)
            if not member:
                raise Refusal(
                    "forbidden",
                    text(locale, "refuse.not_member", team=ctx.settings.team(inquiry.team).title),
                )
            outcome = await _dispatch(ctx, session, inquiry, action, rep_id, lead, locale)
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
        ctx.outbox_ready.fire()
    return outcome


async def _dispatch(
    ctx: AppContext,
    session: object,
    inquiry: Inquiry,
    action: Action,
    rep_id: str,
    lead: bool,
    locale: str,
) -> ActionOutcome:
    from sqlmodel.ext.asyncio.session import AsyncSession

    assert isinstance(session, AsyncSession)
    assert inquiry.id is not None
    now = ctx.clock()
    number = inquiry.id
    owner_or_lead = inquiry.assignee == rep_id or lead

    if action.verb == Verb.CLAIM:
        claim = await repo.claim(session, number, rep_id, now)
        current = claim.inquiry
        if not claim.won:
            if current.assignee == rep_id:
                return ActionOutcome(True, text(locale, "outcome.claimed", number=number), number)
            if current.assignee and current.claimed_at:
                ago = text(
                    locale,
                    "time.ago",
                    duration=duration_words((now - current.claimed_at).total_seconds(), locale),
                )
                message = text(
                    locale, "outcome.claimed_by", name=ctx.rep_name(current.assignee), ago=ago
                )
            else:
                message = text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{current.status}"),
                    after=text(locale, "status.claimed"),
                )
            return ActionOutcome(False, message, number, "lost_race")
        team = ctx.settings.team(current.team)
        reply_due = due_after(
            team, now, sla_for(team, current.priority).first_reply_within, priority=current.priority
        )
        current = await repo.change(
            session, current, now, reply_due_at=reply_due, next_due_at=reply_due, claim_due_at=None
        )
        repo.add_event(
            session,
            current,
            at=now,
            actor=rep_id,
            kind="claimed",
            before=Status.NEW.value,
            after=Status.CLAIMED.value,
        )
        await queue_card_updates(
            session,
            ctx,
            current,
            lane=Lane.INTERACTIVE,
            note=f"{ctx.rep_name(rep_id)} claimed #{number}",
        )
        return ActionOutcome(True, text(locale, "outcome.claimed", number=number), number)

    if action.verb in (Verb.REPLY, Verb.OPEN):
        path = (
            f"/web/inquiries/{number}/reply"
            if action.verb == Verb.REPLY
            else f"/web/inquiries/{number}"
        )
        return ActionOutcome(True, "", number, open_url=ctx.link(path))

    if action.verb == Verb.RELEASE:
        if inquiry.status == Status.NEW.value:
            raise Refusal("invalid", text(locale, "outcome.released", number=number))
        if not owner_or_lead:
            raise Refusal(
                "forbidden", text(locale, "refuse.not_owner", name=ctx.rep_name(inquiry.assignee))
            )
        if not is_open(inquiry.status):
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{inquiry.status}"),
                    after=text(locale, "status.new"),
                ),
            )
        team = ctx.settings.team(inquiry.team)
        due = due_after(
            team, now, sla_for(team, inquiry.priority).claim_within, priority=inquiry.priority
        )
        before = inquiry.status
        updated = await repo.change(
            session,
            inquiry,
            now,
            status=Status.NEW.value,
            assignee=None,
            claim_due_at=due,
            reply_due_at=None,
            next_due_at=due,
        )
        repo.add_event(
            session,
            updated,
            at=now,
            actor=rep_id,
            kind="released",
            before=before,
            after=Status.NEW.value,
        )
        await queue_card_updates(
            session,
            ctx,
            updated,
            lane=Lane.INTERACTIVE,
            note=f"{ctx.rep_name(rep_id)} released #{number}",
        )
        return ActionOutcome(True, text(locale, "outcome.released", number=number), number)

    if action.verb in (Verb.STATUS, Verb.SPAM):
        target_value = Status.SPAM.value if action.verb == Verb.SPAM else action.value
        try:
            target = Status(target_value)
        except ValueError:
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=inquiry.status,
                    after=target_value,
                ),
            ) from None
        if inquiry.assignee and not owner_or_lead:
            raise Refusal(
                "forbidden", text(locale, "refuse.not_owner", name=ctx.rep_name(inquiry.assignee))
            )
        if target not in allowed_moves(inquiry.status):
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{inquiry.status}"),
                    after=text(locale, f"status.{target.value}"),
                ),
            )
        reason = action.reason.strip()[:500]
        if target in NEEDS_REASON and not reason:
            raise Refusal(
                "invalid",
                text(locale, "refuse.needs_reason", status=text(locale, f"status.{target.value}")),
            )
        values: dict[str, object] = {"status": target.value, "outcome_reason": reason}
        if target in (Status.WON, Status.LOST, Status.SPAM, Status.CLOSED):
            values.update(closed_at=now, next_due_at=None, claim_due_at=None, reply_due_at=None)
        elif target == Status.CLAIMED and not inquiry.assignee:  # reopen by someone: they own it
            values.update(assignee=rep_id, closed_at=None)
        elif target == Status.NEW:
            values.update(assignee=None, closed_at=None)
        if target == Status.CLAIMED:
            values["closed_at"] = None
        before = inquiry.status
        updated = await repo.change(session, inquiry, now, **values)
        repo.add_event(
            session,
            updated,
            at=now,
            actor=rep_id,
            kind="status",
            before=before,
            after=target.value,
            data={"reason": reason} if reason else {},
        )
        label = text(locale, f"status.{target.value}")
        await queue_card_updates(
            session,
            ctx,
            updated,
            lane=Lane.INTERACTIVE,
            note=f"{ctx.rep_name(rep_id)}: {label}" + (f" ({reason})" if reason else ""),
        )
        return ActionOutcome(
            True, text(locale, "outcome.status", number=number, status=label), number
        )

    if action.verb == Verb.SNOOZE:
        span = _SNOOZE.get(action.value)
        if span is None:
            raise Refusal(
                "invalid", f"unknown snooze {action.value!r}; choose one of {', '.join(_SNOOZE)}"
            )
        if inquiry.assignee and not owner_or_lead:
            raise Refusal(
                "forbidden", text(locale, "refuse.not_owner", name=ctx.rep_name(inquiry.assignee))
            )
        if not is_open(inquiry.status):
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{inquiry.status}"),
                    after=text(locale, "select.snooze"),
                ),
            )
        until = now + span
        updated = await repo.change(session, inquiry, now, snoozed_until=until, next_due_at=until)
        repo.add_event(
            session,
            updated,
            at=now,
            actor=rep_id,
            kind="snoozed",
            data={"until": until.isoformat()},
        )
        when = until.strftime("%Y-%m-%d %H:%M UTC")
        await queue_card_updates(
            session,
            ctx,
            updated,
            lane=Lane.INTERACTIVE,
            note=f"{ctx.rep_name(rep_id)} snoozed #{number} until {when}",
        )
        return ActionOutcome(
            True, text(locale, "outcome.snoozed", number=number, when=when), number
        )

    if action.verb == Verb.FOLLOW_UP:
        delay = _FOLLOW_UP.get(action.value)
        if delay is None:
            raise Refusal(
                "invalid",
                f"unknown follow-up {action.value!r}; choose one of {', '.join(_FOLLOW_UP)}",
            )
        if inquiry.assignee and not owner_or_lead:
            raise Refusal(
                "forbidden", text(locale, "refuse.not_owner", name=ctx.rep_name(inquiry.assignee))
            )
        if inquiry.status != Status.FOLLOW_UP.value and Status.FOLLOW_UP not in allowed_moves(
            inquiry.status
        ):
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{inquiry.status}"),
                    after=text(locale, "status.follow_up"),
                ),
            )
        team = ctx.settings.team(inquiry.team)
        at = when_open(team, now + delay)
        _updated, when = await apply_follow_up(
            ctx, session, inquiry, rep_id, at, now, status=Status.FOLLOW_UP.value
        )
        return ActionOutcome(
            True, text(locale, "clock.follow_up_set", number=number, when=when), number
        )

    if action.verb == Verb.REASSIGN:
        if not lead:
            raise Refusal("forbidden", text(locale, "refuse.not_lead"))
        target_rep = resolve_rep(ctx, action.platform, action.value) or (
            action.value if ctx.settings.rep(action.value) else None
        )
        if target_rep is None or not _roles(ctx, inquiry.team, target_rep)[0]:
            raise Refusal(
                "invalid",
                text(locale, "refuse.not_member", team=ctx.settings.team(inquiry.team).title),
            )
        if not is_open(inquiry.status):
            raise Refusal(
                "invalid",
                text(
                    locale,
                    "refuse.bad_move",
                    number=number,
                    before=text(locale, f"status.{inquiry.status}"),
                    after=text(locale, "status.claimed"),
                ),
            )
        status = Status.CLAIMED.value if inquiry.status == Status.NEW.value else inquiry.status
        before_owner = inquiry.assignee or ""
        updated = await repo.change(
            session,
            inquiry,
            now,
            assignee=target_rep,
            status=status,
            claimed_at=inquiry.claimed_at or now,
            claim_due_at=None,
        )
        repo.add_event(
            session,
            updated,
            at=now,
            actor=rep_id,
            kind="reassigned",
            before=before_owner,
            after=target_rep,
        )
        name = ctx.rep_name(target_rep)
        await queue_card_updates(
            session,
            ctx,
            updated,
            lane=Lane.INTERACTIVE,
            note=f"{ctx.rep_name(rep_id)} reassigned #{number} to {name}",
        )
        return ActionOutcome(
            True, text(locale, "outcome.reassigned", number=number, name=name), number
        )

    raise Refusal("invalid", f"unsupported action {action.verb.value}")
