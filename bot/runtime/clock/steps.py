"""The clock's step handlers (nudge, escalation ladder, owner reminder, return to pool, wake-up).

Each takes one :class:`bot.runtime.clock.context.StepContext`; :data:`STEPS` maps a
step's kind (``bot.usecases.sla.Step.kind``) to its handler.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.runtime.clock.context import StepContext
from bot.usecases.sla import due_after, sla_elapsed, sla_for
from cards.strings import duration_words
from store.models import Status


def nudge(s: StepContext) -> None:
    """Remind the team's reps on duty, in the card's thread, that the inquiry waits for a claim."""
    inquiry, team = s.inquiry, s.team
    reps = s.on_duty()
    overdue = duration_words(
        sla_elapsed(team, inquiry.claim_due_at, s.now).total_seconds()
        if inquiry.claim_due_at
        else 0,
        team.locale,
    )
    message = s.t(
        "clock.nudge",
        number=inquiry.id,
        subject=inquiry.subject,
        overdue=overdue,
        mentions="{mentions}",
    )
    mailed = s.post_group(message + s.late_suffix, reps)
    s.event("nudged", number=s.step.number, mentions=[r.id for r in reps], mailed=mailed)


def escalate(s: StepContext) -> None:
    """DM the next rung of the ladder (leads, then managers) about a claim or reply overdue."""
    inquiry, step = s.inquiry, s.step
    people = s.ladder(step.number)
    if step.kind == "escalate":
        due = inquiry.claim_due_at or step.due_at
        message = s.t(
            "clock.escalate_claim",
            number=inquiry.id,
            subject=inquiry.subject,
            due=s.local(due),
        )
        phase = "claim"
    else:
        due = inquiry.reply_due_at or step.due_at
        message = s.t(
            "clock.escalate_reply",
            number=inquiry.id,
            subject=inquiry.subject,
            owner=s.ctx.rep_name(inquiry.assignee),
            due=s.local(due),
        )
        phase = "reply"
    reached = s.direct(message + s.late_suffix, people, card="escalation")
    names = ", ".join(s.ctx.rep_name(p) for p in people)
    s.event(
        "escalated",
        before=inquiry.escalation_level,
        after=step.number,
        level=step.number,
        phase=phase,
        to=people,
        names=names,
        reached=reached,
    )
    s.values["escalation_level"] = step.number
    s.notes.append(s.t("clock.escalated_to", names=names))


def remind_owner(s: StepContext) -> None:
    """DM the owner (or their stand-in) that the first reply is due."""
    inquiry = s.inquiry
    if inquiry.assignee is None:
        return
    owner = s.stand_in(inquiry.assignee)
    due = inquiry.reply_due_at or s.step.due_at
    message = s.t(
        "clock.remind_owner",
        number=inquiry.id,
        subject=inquiry.subject,
        due=s.local(due),
    )
    reached = s.direct(message + s.late_suffix, [owner], card="reminder")
    s.event("reminded", to=[owner], reached=reached)


def return_to_pool(s: StepContext) -> None:
    """Unassign an inquiry whose owner did not reply in time; it waits for a claim again."""
    inquiry, team = s.inquiry, s.team
    owner = inquiry.assignee or ""
    claim_due = due_after(
        team, s.now, sla_for(team, inquiry.priority).claim_within, priority=inquiry.priority
    )
    s.values.update(
        status=Status.NEW.value,
        assignee=None,
        claim_due_at=claim_due,
        reply_due_at=None,
        escalation_level=0,
    )
    s.event("returned_to_pool", before=owner, after="", status_before=inquiry.status)
    s.notes.append(s.t("clock.returned", number=inquiry.id, owner=s.ctx.rep_name(owner)))


def wake(s: StepContext) -> None:
    """End a snooze: the clocks that ran out while snoozed start again, the owner or team is told."""
    inquiry, team, now = s.inquiry, s.team, s.now
    s.values["snoozed_until"] = None
    sla = sla_for(team, inquiry.priority)
    if (
        inquiry.status == Status.NEW.value
        and inquiry.claim_due_at is not None
        and inquiry.claim_due_at <= now
    ):
        s.values["claim_due_at"] = due_after(team, now, sla.claim_within, priority=inquiry.priority)
    if (
        inquiry.status == Status.CLAIMED.value
        and inquiry.first_reply_at is None
        and inquiry.reply_due_at is not None
        and inquiry.reply_due_at <= now
    ):
        s.values["reply_due_at"] = due_after(
            team, now, sla.first_reply_within, priority=inquiry.priority
        )
    who = (
        [s.ctx.settings.rep(s.stand_in(inquiry.assignee))]
        if inquiry.assignee
        else list(s.on_duty())
    )
    reps = [r for r in who if r is not None]
    message = s.t("clock.woke", number=inquiry.id, mentions="{mentions}")
    s.post_group(message + s.late_suffix, reps)
    s.event("snooze_ended", to=[r.id for r in reps])
    s.notes.append(s.t("clock.woke", number=inquiry.id, mentions="").strip())


def follow_up(s: StepContext) -> None:
    """The clock's step: the follow-up time came; remind the owner, or the team when unclaimed."""
    inquiry = s.inquiry
    message = s.t(
        "clock.follow_up", number=inquiry.id, subject=inquiry.subject, mentions=""
    ).strip()
    message += s.late_suffix
    if inquiry.assignee:
        to = [s.stand_in(inquiry.assignee)]
        reached = s.direct(message, to, card="reminder")
    else:
        reps = s.on_duty()
        to = [r.id for r in reps]
        s.post_group(message + " {mentions}", reps)
        reached = to
    s.values["follow_up_at"] = None
    s.event("follow_up_due", to=to, reached=reached)


STEPS: dict[str, Callable[[StepContext], None]] = {
    "nudge": nudge,
    "escalate": escalate,
    "escalate_reply": escalate,
    "remind_owner": remind_owner,
    "return_to_pool": return_to_pool,
    "follow_up": follow_up,
    "wake": wake,
}
