"""Tests for routing.business_hours: calendars, holidays, 调休, DST, business-time arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from routing.business_hours import (
    NoWorkingTimeError,
    WorkingCalendar,
    WorkingInterval,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
M = timedelta(minutes=1)

# Configuration for the tests, not real-world knowledge: a National Day week
# with make-up working days (调休) on Sunday 09-27 and Saturday 10-10.
SALES_CN = WorkingCalendar.from_spec(
    "Asia/Shanghai",
    {"mon-fri": ["09:00-12:00", "13:30-18:00"]},
    holidays=["2026-10-01..2026-10-07"],
    makeup_days=["2026-09-27", "2026-10-10"],
)
SALES_DE = WorkingCalendar.from_spec("Europe/Berlin", {"mon-fri": ["09:00-17:00"]})
# Sunday hours that straddle the 02:00-03:00 wall-clock hour Berlin skips
# (2026-03-29) and repeats (2026-10-25).
NIGHT_DE = WorkingCalendar.from_spec(
    "Europe/Berlin",
    {"sun": ["00:00-02:30", "02:45-04:00"], "wed": ["22:00-24:00"], "thu": "00:00-01:00"},
)
ALWAYS_DE = WorkingCalendar.always_open("Europe/Berlin")


def cn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def de(year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0) -> datetime:
    """A Berlin wall-clock time (fold=1: the second occurrence of a repeated time)."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


# -- spec parsing -------------------------------------------------------------


def test_spec_builds_weekly_hours() -> None:
    calendar = WorkingCalendar.from_spec(
        "Asia/Shanghai", {"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["10:00-16:00"]}
    )
    weekday = (WorkingInterval(time(9), time(12)), WorkingInterval(time(13, 30), time(18)))
    assert calendar.weekly_hours == (*(weekday,) * 5, (WorkingInterval(time(10), time(16)),), ())
    assert [str(i) for i in calendar.weekly_hours[0]] == ["09:00-12:00", "13:30-18:00"]


@pytest.mark.parametrize(
    ("key", "days"),
    [
        ("fri-mon", {0, 4, 5, 6}),
        ("Mon,WED, sat-sun", {0, 2, 5, 6}),
        ("tuesday", {1}),
        ("sun-sun", {6}),
    ],
)
def test_spec_day_keys(key: str, days: set[int]) -> None:
    calendar = WorkingCalendar.from_spec("UTC", {key: ["10:00-11:00"]})
    assert {index for index, hours in enumerate(calendar.weekly_hours) if hours} == days


def test_spec_accepts_24_00_string_values_and_merges_touching_intervals() -> None:
    calendar = WorkingCalendar.from_spec(
        "UTC", {"mon": "13:00-24:00, 09:00–13:00", "tue": ["00:00-24:00"], "wed": []}
    )
    assert calendar.weekly_hours[0] == (WorkingInterval(time(9), time(0)),)
    assert str(calendar.weekly_hours[0][0]) == "09:00-24:00"
    assert calendar.weekly_hours[1][0].end_offset == timedelta(hours=24)
    assert calendar.weekly_hours[2] == ()


@pytest.mark.parametrize(
    ("hours", "fragments"),
    [
        ({"mon-fir": ["09:00-12:00"]}, ["'mon-fir'", "'mon-fri'"]),
        ({"weekdays": ["09:00-12:00"]}, ["'weekdays'", "'mon'..'sun'"]),
        ({"mon": ["9-12"]}, ["'mon'", "'9-12'", "HH:MM-HH:MM"]),
        ({"mon": ["25:00-26:00"]}, ["'25:00-26:00'", "HH:MM-HH:MM"]),
        ({"mon": ["09:60-10:00"]}, ["'09:60-10:00'"]),
        ({"mon": ["24:30-24:40"]}, ["'24:30-24:40'"]),
        ({"tue": ["12:00-12:00"]}, ["'12:00-12:00'", "end after the start"]),
        ({"fri": ["22:00-02:00"]}, ["'22:00-02:00'", "cross midnight", "'22:00-24:00'"]),
        ({"mon": [900]}, ["'mon'", "900", "not a string"]),
        ({"mon-fri": ["09:00-12:00"], "fri": ["10:00-11:00"]}, ["'fri'", "'mon-fri'", "once"]),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, ["overlapping", "mon", "09:00-12:00"]),
    ],
)
def test_spec_errors_name_the_entry_and_the_format(
    hours: dict[str, list[str]], fragments: list[str]
) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        WorkingCalendar.from_spec("UTC", hours)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"holidays": ["2026-13-01"]}, "invalid holidays entry '2026-13-01'"),
        ({"holidays": ["2026-10-07..2026-10-01"]}, "ends before it starts"),
        ({"makeup_days": ["27.09.2026"]}, "YYYY-MM-DD..YYYY-MM-DD"),
        ({"holidays": [datetime(2026, 10, 1)]}, "not a datetime"),
        ({"makeup_weekday": "funday"}, "invalid makeup_weekday 'funday'"),
        ({"holidays": ["2026-10-01"], "makeup_days": [date(2026, 10, 1)]}, "2026-10-01"),
    ],
)
def test_spec_date_errors(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        WorkingCalendar.from_spec("UTC", {"mon": ["09:00-10:00"]}, **kwargs)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_spec_date_ranges_expand() -> None:
    assert SALES_CN.holidays == frozenset(date(2026, 10, d) for d in range(1, 8))
    assert SALES_CN.makeup_days == {date(2026, 9, 27), date(2026, 10, 10)}


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        WorkingCalendar.from_spec("Mars/Olympus", {})
    with pytest.raises(ValueError, match="7 entries"):
        WorkingCalendar("UTC", weekly_hours=((),) * 6)
    with pytest.raises(ValueError, match="makeup_weekday"):
        WorkingCalendar("UTC", weekly_hours=((),) * 7, makeup_weekday=7)
    with pytest.raises(ValueError, match="naive"):
        WorkingInterval(time(9, tzinfo=UTC), time(10))
    # Plain (start, end) pairs are accepted and normalized.
    pairs = WorkingCalendar("UTC", weekly_hours=(((time(13), time(14)), (time(9), time(10))),) * 7)  # type: ignore[arg-type]
    assert pairs.weekly_hours[0] == (
        WorkingInterval(time(9), time(10)),
        WorkingInterval(time(13), time(14)),
    )


def test_calendar_is_frozen_and_comparable() -> None:
    again = WorkingCalendar.from_spec(
        "Asia/Shanghai",
        {"mon,tue,wed,thu,fri": "09:00-12:00,13:30-18:00"},
        holidays=[date(2026, 10, d) for d in range(1, 8)],
        makeup_days=["2026-09-27", "2026-10-10"],
        makeup_weekday="monday",
    )
    assert again == SALES_CN
    assert hash(again) == hash(SALES_CN)
    with pytest.raises(AttributeError):
        again.timezone = "UTC"  # type: ignore[misc]


# -- is_open / next_open ------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (cn(2026, 3, 6, 8, 59), False),
        (cn(2026, 3, 6, 9, 0), True),
        (cn(2026, 3, 6, 11, 59), True),
        (cn(2026, 3, 6, 12, 0), False),  # lunch break
        (cn(2026, 3, 6, 13, 29), False),
        (cn(2026, 3, 6, 13, 30), True),
        (cn(2026, 3, 6, 18, 0), False),  # intervals are half-open
        (cn(2026, 3, 7, 10, 0), False),  # Saturday
        (cn(2026, 10, 1, 10, 0), False),  # holiday on a Thursday
        (cn(2026, 9, 27, 10, 0), True),  # make-up Sunday, Monday's hours
        (cn(2026, 9, 27, 12, 30), False),  # ... including Monday's lunch break
        (cn(2026, 10, 10, 17, 59), True),  # make-up Saturday
        (datetime(2026, 3, 6, 1, 0, tzinfo=UTC), True),  # 09:00 in Shanghai
        (datetime(2026, 3, 6, 4, 0, tzinfo=UTC), False),  # 12:00 in Shanghai
    ],
)
def test_is_open(at: datetime, expected: bool) -> None:
    assert SALES_CN.is_open(at) is expected


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        SALES_CN.is_open(datetime(2026, 3, 6, 10))
    with pytest.raises(ValueError, match="aware"):
        SALES_CN.add_business_time(datetime(2026, 3, 6, 10), H)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (cn(2026, 3, 6, 10, 15), cn(2026, 3, 6, 10, 15)),  # open: itself
        (cn(2026, 3, 6, 12, 10), cn(2026, 3, 6, 13, 30)),  # lunch
        (cn(2026, 3, 6, 18, 0), cn(2026, 3, 9, 9, 0)),  # Friday evening -> Monday
        (cn(2026, 9, 26, 20, 0), cn(2026, 9, 27, 9, 0)),  # Saturday -> make-up Sunday
        (cn(2026, 9, 30, 18, 0), cn(2026, 10, 8, 9, 0)),  # across the holiday week
        (cn(2026, 10, 9, 18, 0), cn(2026, 10, 10, 9, 0)),  # Friday -> make-up Saturday
    ],
)
def test_next_open(at: datetime, expected: datetime) -> None:
    result = SALES_CN.next_open(at)
    assert result == expected
    assert result.tzinfo is UTC


def test_next_open_joins_intervals_across_midnight() -> None:
    # Wednesday 22:00-24:00 continues into Thursday 00:00-01:00.
    assert NIGHT_DE.next_open(de(2026, 6, 4, 0, 0)) == de(2026, 6, 4, 0, 0)
    assert NIGHT_DE.is_open(de(2026, 6, 3, 23, 59))
    assert NIGHT_DE.business_time_between(de(2026, 6, 3, 12), de(2026, 6, 4, 12)) == 3 * H
    assert NIGHT_DE.add_business_time(de(2026, 6, 3, 23), 90 * M) == de(2026, 6, 4, 0, 30)


# -- add_business_time ------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # Friday 30 min before close + 1 h -> 30 min after Monday's opening.
        (cn(2026, 3, 6, 17, 30), H, cn(2026, 3, 9, 9, 30)),
        # Lunch break skipped.
        (cn(2026, 3, 6, 11, 30), H, cn(2026, 3, 6, 14, 0)),
        # Running out exactly at closing time returns the closing time.
        (cn(2026, 3, 6, 17, 0), H, cn(2026, 3, 6, 18, 0)),
        (cn(2026, 3, 6, 11, 0), H, cn(2026, 3, 6, 12, 0)),
        # Starting while closed counts from the next opening.
        (cn(2026, 3, 7, 15, 0), 15 * M, cn(2026, 3, 9, 9, 15)),
        # Holiday week: Wednesday 09-30 17:30 + 1 h -> Thursday 10-08 09:30.
        (cn(2026, 9, 30, 17, 30), H, cn(2026, 10, 8, 9, 30)),
        # Make-up Saturday 10-10 works Monday's hours.
        (cn(2026, 10, 9, 17, 30), H, cn(2026, 10, 10, 9, 30)),
        (cn(2026, 10, 9, 17, 30), 8 * H, cn(2026, 10, 10, 18, 0)),
        (cn(2026, 10, 9, 17, 30), 8 * H + M, cn(2026, 10, 12, 9, 1)),
        # Make-up Sunday 09-27.
        (cn(2026, 9, 25, 17, 0), 2 * H, cn(2026, 9, 27, 10, 0)),
        # 40 business hours from Monday 09:00: 5 x 7.5 h = 37.5 h, then 2.5 h.
        (cn(2026, 3, 9, 9, 0), 40 * H, cn(2026, 3, 16, 11, 30)),
        # Zero duration: the start itself.
        (cn(2026, 3, 7, 15, 0), timedelta(0), cn(2026, 3, 7, 15, 0)),
    ],
)
def test_add_business_time(start: datetime, duration: timedelta, expected: datetime) -> None:
    result = SALES_CN.add_business_time(start, duration)
    assert result == expected
    assert result.tzinfo is UTC


def test_add_business_time_skips_a_holiday_monday() -> None:
    calendar = WorkingCalendar.from_spec(
        "Asia/Shanghai", {"mon-fri": ["09:00-12:00", "13:30-18:00"]}, holidays=["2026-03-09"]
    )
    assert calendar.add_business_time(cn(2026, 3, 6, 17, 30), H) == cn(2026, 3, 10, 9, 30)


def test_add_business_time_rejects_negative_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        SALES_CN.add_business_time(cn(2026, 3, 6, 10), -M)


def test_long_holiday_and_long_duration() -> None:
    """Correct over a ~300-day holiday and 2,000 business hours (speed is not asserted here)."""
    calendar = WorkingCalendar.from_spec(
        "Asia/Shanghai",
        {"mon-fri": ["09:00-18:00"]},
        holidays=["2026-01-05..2026-10-30"],  # ~300 days off, within the horizon
    )
    assert calendar.add_business_time(cn(2026, 1, 2, 17, 0), 2 * H) == cn(2026, 11, 2, 10, 0)
    # 2,000 business hours: about 222 working days.
    assert SALES_CN.add_business_time(cn(2026, 1, 5, 9, 0), 2000 * H) > cn(2026, 11, 1)


def test_no_working_time_is_a_clear_error() -> None:
    closed = WorkingCalendar.from_spec("Asia/Shanghai", {})
    with pytest.raises(NoWorkingTimeError, match="no working time in the 400 days"):
        closed.add_business_time(cn(2026, 3, 6, 10), H)
    with pytest.raises(NoWorkingTimeError):
        closed.next_open(cn(2026, 3, 6, 10))
    assert not closed.is_open(cn(2026, 3, 6, 10))
    assert closed.business_time_between(cn(2026, 1, 1), cn(2027, 1, 1)) == timedelta(0)
    # Working hours hidden behind more than 400 days of holidays.
    buried = WorkingCalendar.from_spec(
        "UTC", {"mon": ["09:00-10:00"]}, holidays=["2026-01-01..2027-12-31"]
    )
    with pytest.raises(NoWorkingTimeError):
        buried.next_open(datetime(2026, 1, 1, tzinfo=UTC))
    assert buried.next_open(datetime(2027, 6, 1, tzinfo=UTC)) == datetime(2028, 1, 3, 9, tzinfo=UTC)


# -- business_time_between -------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (cn(2026, 3, 6, 17, 0), cn(2026, 3, 9, 10, 0), 2 * H),  # over the weekend
        (cn(2026, 3, 6, 11, 0), cn(2026, 3, 6, 14, 0), 90 * M),  # lunch excluded
        (cn(2026, 3, 6, 12, 15), cn(2026, 3, 6, 13, 0), timedelta(0)),
        (cn(2026, 3, 9, 9, 0), cn(2026, 3, 16, 9, 0), 37.5 * H),  # a full week
        (cn(2026, 9, 30, 17, 0), cn(2026, 10, 8, 10, 0), 2 * H),  # holiday week
        (cn(2026, 9, 26, 0, 0), cn(2026, 9, 28, 0, 0), 7.5 * H),  # make-up Sunday
        (cn(2026, 3, 9, 10, 0), cn(2026, 3, 6, 17, 0), -2 * H),  # reversed: negative
    ],
)
def test_business_time_between(a: datetime, b: datetime, expected: timedelta) -> None:
    assert SALES_CN.business_time_between(a, b) == expected


# -- DST -------------------------------------------------------------------


def test_berlin_friday_to_monday_across_spring_forward() -> None:
    start = de(2026, 3, 27, 16, 0)  # Friday, CET (+01:00)
    due = SALES_DE.add_business_time(start, 2 * H)
    assert due == de(2026, 3, 30, 10, 0)  # Monday, CEST (+02:00)
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert SALES_DE.business_time_between(start, due) == 2 * H


def test_berlin_friday_to_monday_across_fall_back() -> None:
    start = de(2026, 10, 23, 16, 30)  # Friday, CEST
    due = SALES_DE.add_business_time(start, H)
    assert due == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)  # Monday 09:30 CET
    assert SALES_DE.next_open(de(2026, 10, 24, 12)) == datetime(2026, 10, 26, 8, tzinfo=UTC)


def test_sunday_hours_on_the_spring_forward_day() -> None:
    # 00:00-02:30 loses the non-existent 02:00-02:30; 02:45-04:00 starts at 03:00.
    day = (de(2026, 3, 29, 0, 0), de(2026, 3, 30, 0, 0))
    assert NIGHT_DE.business_time_between(*day) == 3 * H
    assert NIGHT_DE.business_time_between(de(2026, 3, 22), de(2026, 3, 23)) == 3.75 * H
    assert NIGHT_DE.is_open(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
    assert NIGHT_DE.is_open(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST
    assert not NIGHT_DE.is_open(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST
    assert NIGHT_DE.add_business_time(de(2026, 3, 29, 1, 0), 90 * M) == de(2026, 3, 29, 3, 30)


def test_sunday_hours_on_the_fall_back_day() -> None:
    # 02:00-03:00 happens twice; an ambiguous wall time means its first occurrence.
    assert NIGHT_DE.business_time_between(de(2026, 10, 25), de(2026, 10, 26)) == 4.75 * H
    assert NIGHT_DE.is_open(de(2026, 10, 25, 2, 20, fold=0))
    assert not NIGHT_DE.is_open(de(2026, 10, 25, 2, 35, fold=0))  # 02:30-02:45 break
    assert NIGHT_DE.is_open(de(2026, 10, 25, 2, 20, fold=1))  # inside 02:45(first)-04:00
    # (Expected in UTC: PEP 495 makes ambiguous times unequal across zones.)
    assert NIGHT_DE.next_open(de(2026, 10, 25, 2, 35)) == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)


def test_interval_inside_the_gap_vanishes_that_day() -> None:
    calendar = WorkingCalendar.from_spec("Europe/Berlin", {"sun": ["02:10-02:50"]})
    assert calendar.business_time_between(de(2026, 3, 29), de(2026, 3, 30)) == timedelta(0)
    assert calendar.next_open(de(2026, 3, 29)) == de(2026, 4, 5, 2, 10)


def test_always_open_is_wall_clock_arithmetic() -> None:
    assert ALWAYS_DE.is_always_open
    assert not SALES_DE.is_always_open
    start = de(2026, 3, 28, 12, 0)
    assert ALWAYS_DE.add_business_time(start, 24 * H) == de(2026, 3, 29, 13, 0)
    assert ALWAYS_DE.business_time_between(start, de(2026, 3, 29, 12, 0)) == 23 * H
    assert ALWAYS_DE.is_open(start)
    assert ALWAYS_DE.next_open(start) == start
    # Far beyond the search horizon: still plain arithmetic.
    assert ALWAYS_DE.add_business_time(start, timedelta(days=5000)) == start + timedelta(days=5000)
    # The same hours written out in full behave the same.
    assert WorkingCalendar.from_spec("UTC", {"mon-sun": ["00:00-24:00"]}).is_always_open
    # Whole days counted one by one (a holiday elsewhere defeats the shortcut)
    # also add up to elapsed time across the DST change.
    spelled = WorkingCalendar.from_spec(
        "Europe/Berlin", {"mon-sun": ["00:00-12:00", "12:00-24:00"]}, holidays=["2030-01-01"]
    )
    assert not spelled.is_always_open
    assert spelled.business_time_between(start, de(2026, 3, 29, 12, 0)) == 23 * H


# -- properties ------------------------------------------------------------

CALENDARS = st.sampled_from([SALES_CN, SALES_DE, NIGHT_DE, ALWAYS_DE])
AROUND_DST = st.sampled_from(
    [datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)]
).flatmap(
    lambda base: st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4)).map(
        lambda offset: base + offset
    )
)
STARTS = st.one_of(
    AROUND_DST,
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
)
DURATIONS = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=120))
TICK = timedelta(microseconds=1)


@settings(max_examples=150, deadline=None)
@given(calendar=CALENDARS, start=STARTS, duration=DURATIONS)
@example(calendar=NIGHT_DE, start=de(2026, 3, 29, 0, 30), duration=2 * H)
@example(calendar=NIGHT_DE, start=de(2026, 10, 25, 2, 30, fold=1), duration=H)
@example(calendar=SALES_CN, start=cn(2026, 9, 30, 17, 59), duration=2 * M)
def test_add_then_measure_round_trips(
    calendar: WorkingCalendar, start: datetime, duration: timedelta
) -> None:
    end = calendar.add_business_time(start, duration)
    assert end > start
    # The result is working time, or the end of a working interval.
    assert calendar.is_open(end) or calendar.is_open(end - TICK)
    assert calendar.business_time_between(start, end) == duration
    # Nothing earlier has accumulated the duration already.
    assert calendar.business_time_between(start, end - TICK) < duration


@settings(max_examples=100, deadline=None)
@given(calendar=CALENDARS, start=STARTS, durations=st.lists(DURATIONS, min_size=2, max_size=2))
def test_add_business_time_is_monotonic(
    calendar: WorkingCalendar, start: datetime, durations: list[timedelta]
) -> None:
    short, long = sorted(durations)
    assert calendar.add_business_time(start, short) <= calendar.add_business_time(start, long)


@settings(max_examples=100, deadline=None)
@given(calendar=CALENDARS, at=STARTS)
def test_next_open_is_open_and_nothing_is_skipped(calendar: WorkingCalendar, at: datetime) -> None:
    opening = calendar.next_open(at)
    assert opening >= at
    assert calendar.is_open(opening)
    assert calendar.business_time_between(at, opening) == timedelta(0)
    assert (opening == at) is calendar.is_open(at)


@settings(max_examples=100, deadline=None)
@given(calendar=CALENDARS, a=STARTS, b=STARTS, c=STARTS)
def test_business_time_between_is_additive(
    calendar: WorkingCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    ab = calendar.business_time_between(a, b)
    assert timedelta(0) <= ab <= b - a
    assert ab + calendar.business_time_between(b, c) == calendar.business_time_between(a, c)
    assert calendar.business_time_between(b, a) == -ab
