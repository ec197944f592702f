"""One due step being done: the inquiry, its team, the step, and what the step writes.

Each step handler (``bot.runtime.clock.steps``, ``bot.usecases.follow_ups``) takes one
:class:`StepContext` and posts, DMs and records Events through it; it sets the
inquiry's new column values in ``values`` and the card's note in ``notes``,
which the scheduler stores with one compare-and-set after the inquiry's steps.

Whoever a group post or a DM cannot reach on the team's chat gets the same
message by email (:meth:`StepContext.mail`), keyed by rep and step like the
chat rows, so it is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from bot.context import AppContext
from bot.runtime.clock.people import (
    ladder,
    mention,
    on_duty,
    platform_user,
    rungs,
    stand_in,
    targets,
)
from bot.runtime.clock.writes import Writes
from bot.usecases.notices import NOTICE_OF_STEP, dm_rows, notice_row, reachable_on_chat
from bot.usecases.sla import ClockState, Plan, Step, plan
from cards.strings import text, zoned_time
from config.schema import RepSettings, TeamSettings
from store.models import Inquiry, Lane


def local_time(team: TeamSettings, at: datetime) -> str:
    """``at`` in the team's time zone with the zone named, as messages show it
    (``2026-11-23 14:05 CST (Asia/Shanghai)``)."""
    return zoned_time(at, team.timezone)


def clock_state(inquiry: Inquiry) -> ClockState:
    """The columns of ``inquiry`` that the pure planner (``bot.usecases.sla.plan``) reads."""
    assert inquiry.id is not None
    return ClockState(
        id=inquiry.id,
        status=inquiry.status,
        assignee=inquiry.assignee,
        priority=inquiry.priority,
        country=inquiry.country,
        claim_due_at=inquiry.claim_due_at,
        reply_due_at=inquiry.reply_due_at,
        first_reply_at=inquiry.first_reply_at,
        snoozed_until=inquiry.snoozed_until,
        follow_up_at=inquiry.follow_up_at,
    )


def plan_for(
    ctx: AppContext,
    team: TeamSettings,
    inquiry: Inquiry,
    now: datetime,
    away: frozenset[str],
    levels: int | None = None,
    *,
    changed: dict[str, Any] | None = None,
) -> Plan:
    """Which steps of ``inquiry`` are due at ``now`` and when the next one is.

    ``levels``: how many rungs of the team's ladder have someone in them, when the caller
    already knows (the same for every inquiry of the team within one ``away``).
    ``changed``: column values the inquiry is about to get (planned as if stored).
    """
    if levels is None:
        levels = len(rungs(ctx, team, away))  # an empty rung falls through (clock.people)
    state = clock_state(inquiry)
    if changed:
        state = replace(state, **{k: v for k, v in changed.items() if k in _STATE_FIELDS})
    return plan(state, team, now, has_leads=levels >= 1, has_managers=levels >= 2)


_STATE_FIELDS = frozenset(f.name for f in fields(ClockState))


@dataclass
class StepContext:
    """One due step of one inquiry, inside its chunk's transaction; the shared ways to act."""

    ctx: AppContext
    out: Writes
    team: TeamSettings
    inquiry: Inquiry
    step: Step
    now: datetime
    late: bool
    away: frozenset[str]
    values: dict[str, Any]
    """New column values of the inquiry, stored after its steps."""
    notes: list[str]
    """Notes for the card's update (a non-empty list re-renders the card)."""
    memo: dict[tuple[str, ...], Any] = field(default_factory=dict)
    """Answers that hold for the whole chunk (one ``away``, fixed settings and channels),
    shared by its steps: who is on duty, where the team posts, who is reachable on chat."""

    @property
    def number(self) -> int:
        assert self.inquiry.id is not None
        return self.inquiry.id

    def t(self, key: str, **params: object) -> str:
        """The team's string ``key``."""
        return text(self.team.locale, key, **params)

    def local(self, at: datetime) -> str:
        return local_time(self.team, at)

    @property
    def late_suffix(self) -> str:
        """ " (late: was due ...)" when the step is done late, else ""."""
        return (" " + self.t("clock.late", due=self.local(self.step.due_at))) if self.late else ""

    def stand_in(self, rep_id: str) -> str:
        return stand_in(self.ctx, rep_id, self.away)

    def on_duty(self) -> list[RepSettings]:
        key = ("on_duty", self.team.name)
        if key not in self.memo:
            self.memo[key] = on_duty(self.ctx, self.team, self.away)
        return list(self.memo[key])

    def targets(self) -> list[tuple[str, str]]:
        """Every (platform, destination) where the team's cards are posted."""
        key = ("targets", self.team.name)
        if key not in self.memo:
            self.memo[key] = targets(self.ctx, self.team)
        return list(self.memo[key])

    def _reachable(self, rep: RepSettings) -> bool:
        key = ("reachable", self.team.name, rep.id)
        if key not in self.memo:
            self.memo[key] = reachable_on_chat(self.ctx, self.team, rep)
        return bool(self.memo[key])

    def _mentions(self, channel: str, reps: list[RepSettings]) -> tuple[str, list[str]]:
        key = ("mentions", channel, *(r.id for r in reps))
        if key not in self.memo:
            self.memo[key] = (
                " ".join(mention(self.ctx, channel, r) for r in reps),
                [platform_user(self.ctx, channel, r) for r in reps],
            )
        found: tuple[str, list[str]] = self.memo[key]
        return found[0], list(found[1])

    def ladder(self, level: int) -> list[str]:
        return ladder(self.ctx, self.team, level, self.away)

    def post_group(self, message: str, reps: list[RepSettings]) -> list[str]:
        """A message in the card's thread on every platform, ``{mentions}`` filled in per platform;
        by email to those of ``reps`` not reachable there. Returns who is mailed."""
        for channel, dest in self.targets():
            mentions, users = self._mentions(channel, reps)
            self.out.enqueue(
                key=f"thread.post:{channel}:{dest}:{self.step.key}",
                channel=channel,
                kind="thread.post",
                destination=dest,
                inquiry_id=self.number,
                now=self.now,
                payload={
                    "text": message.replace("{mentions}", mentions).strip(),
                    "mentions": users,
                },
            )
        return self.mail([r.id for r in reps], message)

    def mail(self, rep_ids: list[str], message: str) -> list[str]:
        """An email to each rep not reachable on the team's chat (``bot.usecases.notices``); returns
        who it goes to (reps with an address and a team mailbox to send through)."""
        mailed: list[str] = []
        key = ("unreachable", self.team.name, *rep_ids)
        if key not in self.memo:
            reps = (self.ctx.settings.rep(rep_id) for rep_id in rep_ids)
            self.memo[key] = [r for r in reps if r is not None and not self._reachable(r)]
        unreachable: list[RepSettings] = self.memo[key]
        for rep in unreachable:
            row = notice_row(
                self.ctx,
                self.team,
                rep,
                key=f"notify:{rep.id}:{self.step.key}",
                what=NOTICE_OF_STEP.get(self.step.kind, "nudge"),
                message=message.replace("{mentions}", "").strip(),
                inquiry=self.inquiry,
                now=self.now,
            )
            if row is not None:
                self.out.enqueue(**row)
                mailed.append(rep.id)
        return mailed

    def direct(self, message: str, rep_ids: list[str], *, card: str = "") -> list[str]:
        """A DM to each rep on each platform the team uses; returns who was reachable somewhere."""
        reached: list[str] = []
        for rep_id in rep_ids:
            rep = self.ctx.settings.rep(rep_id)
            if rep is None:
                continue
            rows = dm_rows(
                self.ctx,
                self.team,
                rep,
                key=self.step.key,
                inquiry_id=self.number,
                now=self.now,
                lane=Lane.BULK,
                payload={
                    "text": message,
                    "locale": self.team.locale,
                    "rep": rep_id,
                    "card": card,
                    "level": self.step.number,
                },
            )
            self.out.outbox.extend(rows)
            if rows and rep_id not in reached:
                reached.append(rep_id)
        reached.extend(r for r in self.mail(rep_ids, message) if r not in reached)
        return reached

    def event(self, kind: str, **data: Any) -> None:
        """The step's Event (``before``/``after`` taken from ``data``), keyed by the step."""
        self.out.event(
            self.inquiry,
            at=self.now,
            kind=kind,
            before=str(data.pop("before", "")),
            after=str(data.pop("after", "")),
            data={
                "step": self.step.key,
                "due_at": self.step.due_at.isoformat(),
                "late": self.late,
                **data,
            },
        )
