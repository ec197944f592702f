"""The clock's pure planner (``bot.usecases.sla.plan``) for an unclaimed inquiry: the newest
nudge due is found in a bounded number of business-time sums however long the inquiry has
waited, and it is the one the step-by-step search (kept here as the oracle) finds."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.usecases import sla
from bot.usecases.sla import (
    ClockState,
    Plan,
    Step,
    due_after,
    duration,
    plan,
    sla_elapsed,
    when_open,
)
from config.loading import settings_from_mapping
from tests.conftest import base_config

_HOURS = {
    "always": {"mon-sun": ["00:00-24:00"]},
    "office": {"mon-fri": ["09:00-18:00"]},
    "split": {"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["10:00-14:00"]},
}


def _team(hours: str, nudge: int, escalate: int, business_only: bool) -> object:
    data = copy.deepcopy(base_config())
    team = data["teams"][0]
    team["business_hours"] = _HOURS[hours]
    team["sla"] = {
        "claim_within": "15m",
        "nudge_every": f"{nudge}m",
        "escalate_after": f"{escalate}m",
        "business_time_only": business_only,
    }
    return settings_from_mapping(data, source="test.toml", env={}).teams[0]


def _oracle(
    state: ClockState, team: object, now: datetime, has_leads: bool, has_managers: bool
) -> Plan:
    """The unclaimed branch of ``plan`` as it was: the nudge found by stepping down one
    business-time sum at a time."""
    assert state.claim_due_at is not None
    s = sla.sla_for(team, state.priority)  # type: ignore[arg-type]
    start = state.claim_due_at
    epoch = int(start.timestamp())
    every, escalate = duration(s.nudge_every), duration(s.escalate_after)
    due: list[Step] = []
    future: list[datetime] = []

    def after(offset: timedelta) -> datetime:
        return due_after(team, start, offset, priority=state.priority)  # type: ignore[arg-type]

    def at(offset: timedelta) -> datetime:
        return when_open(team, after(offset))  # type: ignore[arg-type]

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
    if every > timedelta(0):
        elapsed = (
            sla_elapsed(team, start, now, priority=state.priority)  # type: ignore[arg-type]
            if now >= start
            else timedelta(-1)
        )
        number = int(elapsed / every) + 1 if elapsed >= timedelta(0) else 0
        while number >= 1 and at(every * (number - 1)) > now:
            number -= 1
        while number >= 1 and after(every * (number - 1)) >= ladder_end:
            number -= 1
        if number >= 1:
            due.append(
                Step(
                    "nudge", f"nudge:{state.id}:{epoch}:{number}", at(every * (number - 1)), number
                )
            )
        following = after(every * number)
        if following < ladder_end:
            future.append(when_open(team, following))  # type: ignore[arg-type]
    due.sort(key=lambda step: step.due_at)
    return Plan(tuple(due), min(future) if future else None)


@settings(max_examples=150, deadline=None)
@given(
    hours=st.sampled_from(sorted(_HOURS)),
    nudge=st.integers(1, 180),
    escalate=st.integers(1, 240),
    business_only=st.booleans(),
    deadline_minute=st.integers(0, 60 * 24 * 14),
    waited_minutes=st.integers(-120, 60 * 24 * 10),
    leads=st.booleans(),
    managers=st.booleans(),
)
def test_the_unclaimed_plan_is_the_step_by_step_one(
    hours: str,
    nudge: int,
    escalate: int,
    business_only: bool,
    deadline_minute: int,
    waited_minutes: int,
    leads: bool,
    managers: bool,
) -> None:
    team = _team(hours, nudge, escalate, business_only)
    deadline = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=deadline_minute)
    now = deadline + timedelta(minutes=waited_minutes)
    state = ClockState(7, "new", None, "normal", "", deadline, None, None, None, None)
    found = plan(state, team, now, has_leads=leads, has_managers=managers)  # type: ignore[arg-type]
    assert found == _oracle(state, team, now, leads, managers)


def test_planning_an_inquiry_unclaimed_for_weeks_costs_no_more_than_one_unclaimed_for_an_hour() -> (
    None
):
    """Bounded work: the business-time sums of one plan do not grow with the wait (a
    three-week-old unclaimed inquiry used to cost one sum per nudge interval since)."""
    team = _team("split", 15, 30, True)
    deadline = datetime(2026, 3, 2, 9, tzinfo=UTC)
    state = ClockState(7, "new", None, "normal", "", deadline, None, None, None, None)
    calls = {"n": 0}
    real = sla.due_after

    def counting(*args: object, **kwargs: object) -> datetime:
        calls["n"] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    sums = []
    sla.due_after = counting
    try:
        for waited in (timedelta(hours=1), timedelta(days=21)):
            calls["n"] = 0
            plan(state, team, deadline + waited)  # type: ignore[arg-type]
            sums.append(calls["n"])
    finally:
        sla.due_after = real
    assert sums[1] <= sums[0] + 2, sums
