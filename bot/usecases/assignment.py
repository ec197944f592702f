"""Assignment at intake: the team's strategy (or the rule's) picks a rep on duty, the
inquiry is created claimed by them (an ``assigned`` event saying why), and the rep is
told directly on each of the team's platforms where they have an id.

The choice itself is ``routing.assignment``; this module reads its inputs from the
store (away flags, open counts, the customer's last owner) and draws the
round-robin turn (``store.assignment.next_turn``) in the caller's transaction.
``BatchDraws`` makes the same choices for the new inquiries of an intake batch, reading
once per batch and drawing in memory, and writes the turns they drew with theirs.
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
from routing.assignment import (
    AssignmentChoice,
    AssignmentRequest,
    choose,
    needs_open_counts,
    pick_turn,
    strategy_for,
)
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
    counted = needs_open_counts(ctx.settings, request)
    request = dataclasses.replace(
        request,
        away=await away_reps(ctx, session),
        open_counts=await store_assignment.open_counts(session, team.members) if counted else {},
        previous_owner=await store_assignment.previous_owner(session, contact_id)
        if team.sticky
        else "",
    )
    choice = choose(ctx.settings, request)
    if choice.needs_turn:
        choice = pick_turn(choice, await store_assignment.next_turn(session, team.name))
    return choice


class BatchDraws:
    """``choose_assignee`` for the new inquiries of one intake batch, written together.

    What ``choose_assignee`` reads before each draw is read once, when a team first needs
    it: the team's turn row (taken, as ``choose_assignee`` takes it, until the transaction
    ends), the reps away, the open counts of its members. The choices are then drawn in
    memory in the batch's order, each seeing the ones before it (a rep chosen holds one more
    open inquiry, a round-robin draw advances the team's counter), and ``write`` stores the
    counters with the batch's rows. So a batch assigns as its items would one by one: the
    same reps, the same turns (``tests/test_intake_group_commit.py`` compares the rows).

    Only for new senders: a new contact has no previous owner, so a sticky team's choice
    is its strategy's. An item written one by one in between reads and draws from the
    store itself; ``forget`` then drops what was read (the pending turns are written first).
    """

    def __init__(self, ctx: AppContext, session: Any) -> None:
        self.ctx = ctx
        self.session = session
        self._away: frozenset[str] | None = None
        self._counts: dict[str, int] = {}  # open inquiries per rep, for the reps read so far
        self._unwritten: dict[str, int] = {}  # reps chosen since the last ``write``
        self._turns: dict[str, int] = {}  # each team's counter as drawn so far
        self._drawn: dict[str, int] = {}  # draws per team not yet written

    async def choose(self, team: TeamSettings, language: str, rule_assign: str) -> AssignmentChoice:
        """The choice ``choose_assignee`` would make for a new sender's inquiry now."""
        unread = choice_without_reading(self.ctx, team, language, rule_assign)
        if unread is not None:
            return unread
        if team.name not in self._turns:
            self._turns[team.name] = await store_assignment.lock_turn(self.session, team.name)
        if self._away is None:
            self._away = await away_reps(self.ctx, self.session)
        request = AssignmentRequest(team=team, language=language, rule_assign=rule_assign)
        unread_reps = [rep for rep in team.members if rep not in self._counts]
        if unread_reps and needs_open_counts(self.ctx.settings, request):
            stored = await store_assignment.open_counts(self.session, unread_reps)
            for rep in unread_reps:  # the store has not seen the batch's own choices yet
                self._counts[rep] = stored.get(rep, 0) + self._unwritten.get(rep, 0)
        request = dataclasses.replace(request, away=self._away, open_counts=dict(self._counts))
        choice = choose(self.ctx.settings, request)
        if choice.needs_turn:
            self._turns[team.name] += 1
            self._drawn[team.name] = self._drawn.get(team.name, 0) + 1
            choice = pick_turn(choice, self._turns[team.name])
        if choice.rep:  # created claimed by them: one more open inquiry
            self._unwritten[choice.rep] = self._unwritten.get(choice.rep, 0) + 1
            if choice.rep in self._counts:
                self._counts[choice.rep] += 1
        return choice

    async def write(self) -> None:
        """Advance each team's stored counter by the turns drawn since the last ``write``."""
        for team, drawn in self._drawn.items():
            stored = await store_assignment.advance_turn(self.session, team, drawn)
            if stored != self._turns[team]:  # the row is ours until the commit: cannot happen
                raise RuntimeError(f"team {team}: turn {stored} stored, {self._turns[team]} drawn")
        self._drawn.clear()
        self._unwritten.clear()  # the batch's inquiries are in the store now

    def forget(self) -> None:
        """Drop what was read: an item written one by one has read, drawn and assigned."""
        if self._drawn:
            raise RuntimeError("BatchDraws.forget with turns not written")
        self._away = None
        self._counts.clear()
        self._turns.clear()
        self._unwritten.clear()


def choice_without_reading(
    ctx: AppContext, team: TeamSettings, language: str, rule_assign: str
) -> AssignmentChoice | None:
    """The choice when it needs nothing from the store (the team's pool: nobody assigned,
    the card is claimed in chat), else ``None`` (``choose_assignee`` reads and draws)."""
    request = AssignmentRequest(team=team, language=language, rule_assign=rule_assign)
    if strategy_for(request) == "pool" and not rule_assign and not team.sticky:
        return choose(ctx.settings, request)
    return None


def claimed_values(team: TeamSettings, priority: str, rep: str, now: datetime) -> dict[str, Any]:
    """The inquiry's new column values when ``rep`` is assigned it at intake (claimed by them,
    its first-reply deadline running)."""
    reply_due = due_after(team, now, sla_for(team, priority).first_reply_within, priority=priority)
    return dict(
        status=Status.CLAIMED.value,
        assignee=rep,
        claimed_at=now,
        claim_due_at=None,
        reply_due_at=reply_due,
        next_due_at=reply_due,
    )


def assigned_event(choice: AssignmentChoice, before: str, now: datetime) -> dict[str, Any]:
    """The ``assigned`` event's fields (``repo.add_event`` keywords)."""
    return dict(
        at=now,
        actor="system",
        kind="assigned",
        before=before,
        after=choice.rep,
        data={"strategy": choice.strategy, "reason": choice.reason},
    )


def assigned_notice(inquiry_id: int, subject: str, choice: AssignmentChoice) -> str:
    """What the new owner is told."""
    return f"#{inquiry_id} is yours: {subject[:120]} ({choice.reason})"


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
    number, before = inquiry.id, inquiry.status
    inquiry = await repo.change(
        session, inquiry, now, **claimed_values(team, inquiry.priority, choice.rep, now)
    )
    repo.add_event(session, inquiry, **assigned_event(choice, before, now))
    # the new owner hears it directly: a DM where reachable on chat, else an email (bot.usecases.notices)
    await tell_assignee(
        session,
        ctx,
        inquiry,
        choice.rep,
        assigned_notice(number, inquiry.subject, choice),
        key=f"assigned:{number}:v{inquiry.version}",
    )
    log.info(
        "inquiry assigned",
        extra={"inquiry": inquiry.id, "rep": choice.rep, "strategy": choice.strategy},
    )
    return inquiry
