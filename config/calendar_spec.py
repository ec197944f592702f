"""Business-hours specs as written in ``claimdesk.toml``: parsed and checked, pure.

The lowest layer owns the parsing so that the config schema can validate a
team's ``business_hours``, ``holidays`` and ``workdays`` when the file loads
(``claimdesk check`` then refuses what would later fail at runtime), and
``routing.business_hours`` builds its :class:`WorkingCalendar` from the same
functions: one parser, one set of messages. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

__all__ = [
    "DAY_NAMES",
    "CalendarSpec",
    "WorkingInterval",
    "normalize_day",
    "parse_calendar_spec",
    "parse_dates",
    "parse_weekday",
]

_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
DAY_NAMES: tuple[tuple[str, ...], ...] = (
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
)
_DAY_BY_NAME = {name: index for index, names in enumerate(DAY_NAMES) for name in names}
_DAYS_FORMAT = (
    "a day ('mon'..'sun'), a range such as 'mon-fri' or 'fri-mon', "
    "or a comma-separated list such as 'mon,wed,sat-sun'"
)
_INTERVAL_FORMAT = (
    "'HH:MM-HH:MM' on the 24-hour clock, such as '09:00-12:00' or '13:30-24:00', "
    "with the end after the start; an interval may not cross midnight: "
    "split '22:00-02:00' into '22:00-24:00' and '00:00-02:00' on the next day"
)
_DATE_FORMAT = "'YYYY-MM-DD' or a range 'YYYY-MM-DD..YYYY-MM-DD'"
_INTERVAL_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~～]\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class WorkingInterval:
    """One working interval of a day, in local wall-clock time.

    ``end`` is exclusive; ``time(0)`` as the end means midnight at the end of
    the day (24:00). The interval may not cross midnight.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError(f"working interval {self} must use naive (local wall-clock) times")
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise ValueError(f"invalid working interval {self}: expected {_INTERVAL_FORMAT}")

    @classmethod
    def parse(cls, text: str) -> WorkingInterval:
        """Parse ``"HH:MM-HH:MM"`` (``24:00`` is accepted as an end)."""
        match = _INTERVAL_RE.match(text)
        if match is None:
            raise ValueError(f"invalid working interval {text!r}: expected {_INTERVAL_FORMAT}")
        sh, sm, eh, em = (int(part) for part in match.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
            raise ValueError(f"invalid working interval {text!r}: expected {_INTERVAL_FORMAT}")
        start = time(sh, sm)
        end = _MIDNIGHT if eh == 24 else time(eh, em)
        if end != _MIDNIGHT and end <= start:
            raise ValueError(f"invalid working interval {text!r}: expected {_INTERVAL_FORMAT}")
        return cls(start, end)

    @property
    def start_offset(self) -> timedelta:
        """The start as a distance from the day's midnight."""
        return _offset(self.start)

    @property
    def end_offset(self) -> timedelta:
        """The end as a distance from the day's midnight (24 h for an end at midnight)."""
        return _DAY if self.end == _MIDNIGHT else _offset(self.end)

    def __str__(self) -> str:
        end = "24:00" if self.end == _MIDNIGHT else _clock(self.end)
        return f"{_clock(self.start)}-{end}"


def _offset(value: time) -> timedelta:
    return timedelta(
        hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
    )


def _clock(value: time) -> str:
    text = f"{value.hour:02d}:{value.minute:02d}"
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
        if value.microsecond:
            text += f".{value.microsecond:06d}"
    return text


def normalize_day(
    day_name: str, intervals: Iterable[WorkingInterval]
) -> tuple[WorkingInterval, ...]:
    """Sort a day's intervals, merge touching ones, reject overlaps."""
    checked: list[WorkingInterval] = []
    for item in intervals:
        if isinstance(item, WorkingInterval):
            checked.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            # A plain (start, end) pair of times is accepted for convenience.
            checked.append(WorkingInterval(*item))
        else:
            raise TypeError(f"{day_name}: expected WorkingInterval, got {item!r}")
    merged: list[WorkingInterval] = []
    for interval in sorted(checked, key=lambda item: (item.start_offset, item.end_offset)):
        if merged and interval.start_offset < merged[-1].end_offset:
            raise ValueError(
                f"overlapping business hours on {day_name}: {merged[-1]} and {interval}"
            )
        if merged and interval.start_offset == merged[-1].end_offset:
            merged[-1] = WorkingInterval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return tuple(merged)


def _parse_days(key: str) -> list[int]:
    days: list[int] = []
    for part in key.split(","):
        bounds = [bound.strip().lower() for bound in part.split("-")]
        if len(bounds) > 2 or any(bound not in _DAY_BY_NAME for bound in bounds):
            raise ValueError(f"invalid business hours entry {key!r}: expected {_DAYS_FORMAT}")
        first = _DAY_BY_NAME[bounds[0]]
        last = _DAY_BY_NAME[bounds[-1]]
        days.extend((first + step) % 7 for step in range((last - first) % 7 + 1))
    return days


def _parse_intervals(key: str, value: str | Sequence[str]) -> list[WorkingInterval]:
    texts = value.split(",") if isinstance(value, str) else list(value)
    result: list[WorkingInterval] = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(
                f"invalid business hours entry {key!r}: {text!r} is not a string; "
                f"expected a list of {_INTERVAL_FORMAT}"
            )
        if not text.strip() and isinstance(value, str):
            continue
        try:
            result.append(WorkingInterval.parse(text))
        except ValueError as exc:
            raise ValueError(f"invalid business hours entry {key!r}: {exc}") from None
    return result


def parse_dates(name: str, values: Iterable[date | str]) -> frozenset[date]:
    result: set[date] = set()
    for value in values:
        if isinstance(value, datetime):
            raise ValueError(f"invalid {name} entry {value!r}: expected a date, not a datetime")
        if isinstance(value, date):
            result.add(value)
            continue
        try:
            first_text, _, last_text = value.strip().partition("..")
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if last_text else first
        except (ValueError, AttributeError):
            raise ValueError(f"invalid {name} entry {value!r}: expected {_DATE_FORMAT}") from None
        if last < first:
            raise ValueError(
                f"invalid {name} entry {value!r}: the range ends before it starts; "
                f"expected {_DATE_FORMAT}"
            )
        result.update(first + timedelta(days=step) for step in range((last - first).days + 1))
    return frozenset(result)


def parse_weekday(value: int | str) -> int:
    if isinstance(value, int):
        return value
    index = _DAY_BY_NAME.get(value.strip().lower())
    if index is None:
        raise ValueError(f"invalid makeup_weekday {value!r}: expected a day 'mon'..'sun'")
    return index


@dataclass(frozen=True)
class CalendarSpec:
    """A parsed calendar: seven normalized days (Monday first), holidays, make-up days."""

    weekly_hours: tuple[tuple[WorkingInterval, ...], ...]
    holidays: frozenset[date]
    makeup_days: frozenset[date]
    makeup_weekday: int


def parse_calendar_spec(
    hours: Mapping[str, str | Sequence[str]],
    *,
    holidays: Iterable[date | str] = (),
    makeup_days: Iterable[date | str] = (),
    makeup_weekday: int | str = "mon",
) -> CalendarSpec:
    """Parse and check a calendar spec; ValueError names the bad entry and the format.

    ``hours`` maps days to intervals, e.g.
    ``{"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["10:00-16:00"]}``.
    Keys: a day (``mon``..``sun`` or full English names, any case), a range
    (``mon-fri``, wrapping ``fri-mon``), or a comma-separated list of those;
    each day may be named once. Values: a list of ``"HH:MM-HH:MM"`` strings
    (or one string, intervals separated by commas); an empty list means
    closed. Days not named are closed. ``holidays`` and ``makeup_days``
    take dates or ``"YYYY-MM-DD"`` / ``"YYYY-MM-DD..YYYY-MM-DD"`` strings.
    """
    days: list[list[WorkingInterval]] = [[] for _ in range(7)]
    named_by: dict[int, str] = {}
    for key, value in hours.items():
        for index in _parse_days(key):
            if index in named_by:
                raise ValueError(
                    f"invalid business hours entry {key!r}: {DAY_NAMES[index][0]!r} is "
                    f"already given by {named_by[index]!r}; name each day once"
                )
            named_by[index] = key
            days[index].extend(_parse_intervals(key, value))
    weekly = tuple(normalize_day(DAY_NAMES[i][0], day) for i, day in enumerate(days))
    holiday_dates = parse_dates("holidays", holidays)
    makeup_dates = parse_dates("makeup_days", makeup_days)
    clash = sorted(holiday_dates & makeup_dates)
    if clash:
        listed = ", ".join(day.isoformat() for day in clash)
        raise ValueError(f"dates both holiday and make-up working day: {listed}")
    return CalendarSpec(weekly, holiday_dates, makeup_dates, parse_weekday(makeup_weekday))
