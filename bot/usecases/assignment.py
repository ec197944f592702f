"""Assignment at intake: the team's strategy (or the rule's) picks a rep on duty, the
inquiry is created claimed by them (an ``assigned`` event saying why), and the rep is
told directly on each of the team's platforms where they have an id.

The choice itself is ``routing.assignment``; this module reads its inputs from the
store (away flags, open counts, the customer's last owner) and draws the
round-robin turn (``store.assignment.next_turn``) in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from bot.context import AppContext
from bot.usecases.notices import tell_assignee
from bot.usecases.presence import away_reps
from bot.usecases.sla import due_after, sla_for
from config.schema import TeamSettings
from routing.assignment import AssignmentChoice, AssignmentRequest, choose, pick_turn, strategy_for
from store import assignment as store_assignment
from store import inquiries as repo
from store.models import Inquiry, Status

log = logging.getLogger(__name__)


async def choose_assignee(
    ctx: AppContext,
    session: Any,
    team: TeamSettings,
    language: str,
    rule_assign: str,
    contact_id: int,
) -> AssignmentChoice:
    """The team's strategy (or the rule's, or ``sticky``) over the reps on duty, and why.

    Any assignment first takes the team's turn row: on PostgreSQL that row lock makes
    concurrent assignments for the team happen one after another, so open counts and
    ``max_open`` are read after the previous assignment committed. Only a round-robin
    draw advances the counter (a rule naming a rep does not cost anyone their turn)."""
    request = AssignmentRequest(team=team, language=language, rule_assign=rule_assign)
    unread = choice_without_reading(ctx, team, language, rule_assign)
    if unread is not None:
        return unread
    await store_assignment.lock_turn(session, team.name)
    request = dataclasses.replace(
        request,
        away=await away_reps(ctx, session),
        open_counts=await store_assignment.open_counts(session, team.members),
        previous_owner=await store_assignment.previous_owner(session, contact_id)
        if team.sticky
        else "",
    )
    choice = choose(ctx.settings, request)
    if choice.needs_turn:
        choice = pick_turn(choice, await store_assignment.next_turn(session, team.name))
    return choice


def choice_without_reading(
    ctx: AppContext, team: TeamSettings, language: str, rule_assign: str
) -> AssignmentChoice | None:
    """The choice when it needs nothing from the store (the team's pool: nobody assigned,
    the card is claimed in chat), else ``None`` (``choose_assignee`` reads and draws)."""
    request = AssignmentRequest(team=team, language=language, rule_assign=rule_assign)
    if strategy_for(request) == "pool" and not rule_assign and not team.sticky:
        return choose(ctx.settings, request)
    return None


async def assign(
    ctx: AppContext,
    session: Any,
    inquiry: Inquiry,
    team: TeamSettings,
    choice: AssignmentChoice,
    now: datetime,
) -> Inquiry:
    """``inquiry`` claimed by ``choice.rep``: an ``assigned`` event and a DM to the rep."""
    assert inquiry.id is not None
    reply_due = due_after(
        team, now, sla_for(team, inquiry.priority).first_reply_within, priority=inquiry.priority
    )
    before = inquiry.status
    inquiry = await repo.change(
        session,
        inquiry,
        now,
        status=Status.CLAIMED.value,
        assignee=choice.rep,
        claimed_at=now,
        claim_due_at=None,
        reply_due_at=reply_due,
        next_due_at=reply_due,
    )
    repo.add_event(
        session,
        inquiry,
        at=now,
        actor="system",
        kind="assigned",
        before=before,
        after=choice.rep,
        data={"strategy": choice.strategy, "reason": choice.reason},
    )
    # the new owner hears it directly: a DM where reachable on chat, else an email (bot.usecases.notices)
    await tell_assignee(
        session,
        ctx,
        inquiry,
        choice.rep,
        f"#{inquiry.id} is yours: {inquiry.subject[:120]} ({choice.reason})",
        key=f"assigned:{inquiry.id}:v{inquiry.version}",
    )
    log.info(
        "inquiry assigned",
        extra={"inquiry": inquiry.id, "rep": choice.rep, "strategy": choice.strategy},
    )
    return inquiry
