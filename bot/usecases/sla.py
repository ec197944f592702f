"""SLA time: due times in business time, and the clock's plan of what is due for an inquiry.

Everything here is pure (no I/O): the scheduler (``bot.runtime.clock``) reads an
inquiry, asks :func:`plan` which steps are due *now* and when the next one
falls, acts, and stores that instant in the indexed ``next_due_at`` column.

Decisions, written down:

- Due times (``claim_due_at``, ``reply_due_at``) count business time when the
  team's ``sla.business_time_only`` is set (the default), wall-clock time
  otherwise. Either way nothing is *sent* outside business hours: every step's
  instant is moved to the team calendar's ``next_open``.
- Per-priority overrides: ``[teams.sla_by_priority.vip]`` replaces the team's
  ``sla`` for inquiries of that priority.
- The unclaimed ladder, from the claim due time ``D`` (offsets in SLA time):
  nudge the group at ``D`` and every ``nudge_every`` after; escalate to the
  team leads at ``D + escalate_after`` and to the managers at
  ``D + 2 * escalate_after``. Nudges stop once the managers have been told:
  from then on it is their call, and the card and the digest keep showing it.
- The unanswered ladder, from the reply due time ``R``: DM the owner at ``R``,
  the leads at ``R + escalate_after``, and, when ``return_to_pool`` is set,
  put the inquiry back in the pool at ``R + 2 * escalate_after``.
- Nudges are coalesced: after a gap (a stopped process) only the newest due
  nudge is sent, late; each distinct ladder step is still done once, late.
- Each step has a deterministic key that includes the phase's due time, so a
  released-and-reclaimed inquiry starts a fresh ladder with fresh keys.
- A snoozed inquiry has no other steps until the snooze ends; when it wakes
  and its deadline passed during the snooze, it gets a fresh SLA window
  (the person who snoozed it asked for the time).
- Follow-ups are delivered in the team's business hours and, where the
  customer's country is known, in the customer's working hours too
  (Monday to Friday 09:00-18:00 local), the first instant both are open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cards.countries import zone_of
from config.schema import SlaSettings, TeamSettings, parse_duration_minutes
from routing.business_hours import NoWorkingTimeError, WorkingCalendar

CUSTOMER_HOURS = {"mon-fri": ["09:00-18:00"]}


@lru_cache(maxsize=256)
def _calendar(
    timezone: str, hours_json: str, holidays: tuple[str, ...], workdays: tuple[str, ...]
) -> WorkingCalendar:
    hours: dict[str, list[str]] = json.loads(hours_json)
    if not any(hours.values()):
        return WorkingCalendar.always_open(timezone)
    return WorkingCalendar.from_spec(timezone, hours, holidays=holidays, makeup_days=workdays)


#: id(team) -> (team, calendar): the clock asks once per due inquiry; building the cache
#: key (a JSON dump of the hours) cost more than the rest of its plan (issue 14 profile).
_by_team: dict[int, tuple[TeamSettings, WorkingCalendar]] = {}


def calendar_for(team: TeamSettings) -> WorkingCalendar:
    """The team's working calendar (cached: the settings are immutable)."""
    known = _by_team.get(id(team))
    if known is not None and known[0] is team:
        return known[1]
    calendar = _calendar(
        team.timezone, json.dumps(team.business_hours, sort_keys=True), team.holidays, team.workdays
    )
    if len(_by_team) > 256:
        _by_team.clear()
    _by_team[id(team)] = (team, calendar)
    return calendar


@lru_cache(maxsize=256)
def customer_calendar(country: str) -> WorkingCalendar | None:
    """Working hours of a customer in ``country``, or ``None`` when the zone is unknown."""
    zone = zone_of(country.upper()) if country else ""
    return WorkingCalendar.from_spec(zone, CUSTOMER_HOURS) if zone else None


def sla_for(team: TeamSettings, priority: str = "normal") -> SlaSettings:
    """The service levels that apply to an inquiry of ``priority`` in ``team``."""
    for name, levels in team.sla_by_priority.items():
        if name == priority:
            return levels
    return team.sla


def duration(value: str | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else _parsed(value)


@lru_cache(maxsize=256)
def _parsed(text: str) -> timedelta:
    """A configured duration (a handful per team), parsed once: plans ask many times per tick."""
    return timedelta(minutes=parse_duration_minutes(text))


def due_after(
    team: TeamSettings, start: datetime, span: str | timedelta, *, priority: str = "normal"
) -> datetime:
    """``start`` plus ``span`` of SLA time (business time when the team counts only that)."""
    delta = duration(span)
    if not sla_for(team, priority).business_time_only:
        return start + delta
    try:
        return calendar_for(team).add_business_time(start, delta)
    except NoWorkingTimeError:
        return start + delta


def sla_elapsed(
    team: TeamSettings, start: datetime, end: datetime, *, priority: str = "normal"
) -> timedelta:
    """SLA time between two instants (business time when the team counts only that)."""
    if not sla_for(team, priority).business_time_only:
        return end - start
    return calendar_for(team).business_time_between(start, end)


def when_open(team: TeamSettings, at: datetime) -> datetime:
    """``at`` if the team is at work then, else the next opening: nothing is sent at 3 a.m."""
    try:
        return calendar_for(team).next_open(at)
    except NoWorkingTimeError:
        return at


def when_both_open(team: TeamSettings, country: str, at: datetime) -> datetime:
    """The first instant from ``at`` when the team and (where known) the customer are at work."""
    customer = customer_calendar(country)
    moment = when_open(team, at)
    if customer is None:
        return moment
    for _ in range(28):
        candidate = customer.next_open(moment)
        reopened = when_open(team, candidate)
        if reopened == candidate:
            return candidate
        moment = reopened
    return when_open(team, at)  # the two calendars never overlap: the team's hours win


@dataclass(frozen=True)
class ClockState:
    """The fields of an inquiry the clock decides on."""

    id: int
    status: str
    assignee: str | None
    priority: str
    country: str
    claim_due_at: datetime | None
    reply_due_at: datetime | None
    first_reply_at: datetime | None
    snoozed_until: datetime | None
    follow_up_at: datetime | None


@dataclass(frozen=True)
class Step:
    """One thing the clock does once: its key makes it idempotent across processes."""

    kind: str  # "nudge" | "escalate" | "remind_owner" | "escalate_reply" | "return_to_pool" | "follow_up" | "wake"
    key: str
    due_at: datetime  # when it was due (already moved into business hours)
    number: int = 0  # nudge number or ladder level


@dataclass(frozen=True)
class Plan:
    """What is due now (oldest first) and when the next step falls (``None``: nothing scheduled)."""

    due: tuple[Step, ...]
    next_due_at: datetime | None


_OPEN = frozenset({"new", "claimed", "replied", "waiting", "follow_up"})


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def plan(
    state: ClockState,
    team: TeamSettings,
    now: datetime,
    *,
    has_leads: bool = True,
    has_managers: bool = True,
) -> Plan:
    """The steps of ``state`` due at ``now`` and the instant of the next one."""
    if state.status not in _OPEN:
        return Plan((), None)
    if state.snoozed_until is not None:
        wake = when_open(team, state.snoozed_until)
        if wake > now:
            return Plan((), wake)
        return Plan((Step("wake", f"wake:{state.id}:{_epoch(state.snoozed_until)}", wake),), None)
    sla = sla_for(team, state.priority)
    due: list[Step] = []
    future: list[datetime] = []

    def consider(step: Step) -> None:
        (due.append(step) if step.due_at <= now else future.append(step.due_at))

    if state.status == "new" and state.assignee is None and state.claim_due_at is not None:
        _unclaimed(state, team, sla, now, has_leads, has_managers, due, future)
    elif (
        state.status == "claimed"
        and state.first_reply_at is None
        and state.reply_due_at is not None
    ):
        start = state.reply_due_at
        epoch = _epoch(start)
        escalate = duration(sla.escalate_after)
        consider(Step("remind_owner", f"remind:{state.id}:{epoch}", when_open(team, start)))
        if has_leads:
            at = due_after(team, start, escalate, priority=state.priority)
            consider(
                Step(
                    "escalate_reply", f"escalate:{state.id}:{epoch}:reply:1", when_open(team, at), 1
                )
            )
        if sla.return_to_pool:
            at = due_after(team, start, escalate * 2, priority=state.priority)
            consider(Step("return_to_pool", f"pool:{state.id}:{epoch}", when_open(team, at)))
    if state.follow_up_at is not None:
        at = when_both_open(team, state.country, state.follow_up_at)
        consider(Step("follow_up", f"follow_up:{state.id}:{_epoch(state.follow_up_at)}", at))
    due.sort(key=lambda s: s.due_at)
    return Plan(tuple(due), min(future) if future else None)


def _unclaimed(
    state: ClockState,
    team: TeamSettings,
    sla: SlaSettings,
    now: datetime,
    has_leads: bool,
    has_managers: bool,
    due: list[Step],
    future: list[datetime],
) -> None:
    assert state.claim_due_at is not None
    start = state.claim_due_at
    epoch = _epoch(start)
    every = duration(sla.nudge_every)
    escalate = duration(sla.escalate_after)

    # The same offsets come up several times below (the nudge search, the ladder's end):
    # each business-time sum is computed once per plan.
    sums: dict[timedelta, datetime] = {}
    opened: dict[timedelta, datetime] = {}

    def after(offset: timedelta) -> datetime:
        if offset not in sums:
            sums[offset] = due_after(team, start, offset, priority=state.priority)
        return sums[offset]

    def at(offset: timedelta) -> datetime:
        if offset not in opened:
            opened[offset] = when_open(team, after(offset))
        return opened[offset]

    ladder_end = after(escalate * 2)
    for level, present in ((1, has_leads), (2, has_managers)):
        if present:
            step = Step(
                "escalate",
                f"escalate:{state.id}:{epoch}:claim:{level}",
                at(escalate * level),
                level,
            )
            (due.append(step) if step.due_at <= now else future.append(step.due_at))
    if every <= timedelta(0):
        return
    # The newest nudge due now: estimate its number from the elapsed SLA time, then
    # step back while its (business-hours shifted) instant is still ahead.
    elapsed = (
        sla_elapsed(team, start, now, priority=state.priority) if now >= start else timedelta(-1)
    )
    number = int(elapsed / every) + 1 if elapsed >= timedelta(0) else 0
    # No nudge once the managers have been told: a nudge whose offset from the deadline is
    # not below the ladder's end can never come before it (adding business time never goes
    # back), so the count is capped at once instead of stepping down one business-time sum
    # at a time (hours unclaimed were dozens of sums per plan, per tick).
    cap = (escalate * 2 - timedelta(microseconds=1)) // every + 1 if escalate > timedelta(0) else 0
    number = min(number, max(cap, 0))
    while number >= 1 and at(every * (number - 1)) > now:
        number -= 1
    while number >= 1 and after(every * (number - 1)) >= ladder_end:
        number -= 1  # no nudges once the managers have been told
    if number >= 1:
        due.append(
            Step("nudge", f"nudge:{state.id}:{epoch}:{number}", at(every * (number - 1)), number)
        )
    following = after(every * number)
    if following < ladder_end:
        future.append(when_open(team, following))
