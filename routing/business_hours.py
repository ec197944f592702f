"""Business-hours calendars: when a team is at work, and business-time arithmetic.

A :class:`WorkingCalendar` answers "is the team open now?", "when does it open
next?", "when has this much working time elapsed?" (SLA due times) and "how much
working time lies between these two instants?" (time-to-claim in the digest).

The calendar is defined in the team's local wall-clock time:

- weekly hours: per weekday (Monday = 0) a list of intervals such as 09:00-12:00
  and 13:30-18:00;
- holidays: local dates with no work at all, whatever their weekday;
- make-up working days (调休): local dates that are working days although they
  would otherwise be off (typically a weekend before or after a long holiday).
  On such a date the hours of ``makeup_weekday`` (default Monday) apply.

Decisions, written down:

- Intervals are half-open, ``[start, end)``: a team with hours 09:00-18:00 is
  open at 09:00 and closed at 18:00.
- Intervals do not cross midnight. ``"22:00-02:00"`` is rejected with a message
  saying how to split it: ``"22:00-24:00"`` on one day and ``"00:00-02:00"`` on
  the next (e.g. ``{"mon-fri": ["22:00-24:00"], "tue-sat": ["00:00-02:00"]}``).
  This keeps holidays unambiguous: a holiday removes exactly that local date.
  An end of ``24:00`` (``time(0)`` as a :class:`WorkingInterval` end) means the
  midnight at the end of the day.
- DST: a wall time that does not exist (the spring-forward gap) is read as the
  first instant after the gap, so an interval 01:00-02:30 on the day Berlin
  jumps from 02:00 to 03:00 lasts one hour; an interval lying wholly inside the
  gap disappears for that day. A wall time that occurs twice (fall-back) means
  its first occurrence, so 00:00-04:00 on the day Berlin repeats 02:00-03:00
  lasts five real hours. All arithmetic is done on real (UTC) instants.
- ``add_business_time`` returns the earliest instant at which the duration has
  elapsed: when it runs out exactly at a closing time it returns that closing
  time, not the next opening. A zero duration returns the start unchanged.
- Searching forward for working time stops after :data:`SEARCH_HORIZON_DAYS`
  days without any, with :class:`NoWorkingTimeError`; a long duration is fine
  as long as working time keeps occurring.
- A calendar open 24 hours on every weekday with no holidays (see
  :meth:`WorkingCalendar.always_open`) does plain wall-clock arithmetic.

This module is pure: no I/O beyond the standard library's time zone database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.calendar_spec import DAY_NAMES, WorkingInterval, normalize_day, parse_calendar_spec

__all__ = [
    "SEARCH_HORIZON_DAYS",
    "NoWorkingTimeError",
    "WorkingCalendar",
    "WorkingInterval",
]

SEARCH_HORIZON_DAYS = 400
"""How many consecutive days without working time end a forward search."""

_DAY = timedelta(days=1)
_MIDNIGHT = time(0)


class NoWorkingTimeError(ValueError):
    """The calendar has no working time within the search horizon."""


_FULL_DAY = (WorkingInterval(_MIDNIGHT, _MIDNIGHT),)


@dataclass(frozen=True)
class WorkingCalendar:
    """A team's working time: weekly hours, holidays and make-up working days.

    ``weekly_hours`` has seven entries, Monday first; each is normalized to
    sorted, merged intervals (overlapping intervals are rejected). All methods
    take aware datetimes in any zone and return aware datetimes in UTC.
    """

    timezone: str
    weekly_hours: tuple[tuple[WorkingInterval, ...], ...]
    holidays: frozenset[date] = frozenset()
    makeup_days: frozenset[date] = frozenset()
    makeup_weekday: int = 0
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _continuous: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {self.timezone!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from exc
        if len(self.weekly_hours) != 7:
            raise ValueError(
                f"weekly_hours needs 7 entries (Monday first), got {len(self.weekly_hours)}"
            )
        if not 0 <= self.makeup_weekday <= 6:
            raise ValueError(
                f"makeup_weekday must be 0 (Monday) .. 6 (Sunday), got {self.makeup_weekday}"
            )
        weekly = tuple(
            normalize_day(DAY_NAMES[index][0], day) for index, day in enumerate(self.weekly_hours)
        )
        holidays = frozenset(self.holidays)
        makeup_days = frozenset(self.makeup_days)
        clash = sorted(holidays & makeup_days)
        if clash:
            listed = ", ".join(day.isoformat() for day in clash)
            raise ValueError(f"dates both holiday and make-up working day: {listed}")
        object.__setattr__(self, "weekly_hours", weekly)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "makeup_days", makeup_days)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(
            self, "_continuous", not holidays and all(day == _FULL_DAY for day in weekly)
        )

    # -- construction -----------------------------------------------------

    @classmethod
    def from_spec(
        cls,
        timezone: str,
        hours: Mapping[str, str | Sequence[str]],
        *,
        holidays: Iterable[date | str] = (),
        makeup_days: Iterable[date | str] = (),
        makeup_weekday: int | str = "mon",
    ) -> WorkingCalendar:
        """Build a calendar from configuration values.

        ``hours`` maps days to intervals, e.g.
        ``{"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["10:00-16:00"]}``.
        Keys: a day (``mon``..``sun`` or full English names, any case), a range
        (``mon-fri``, wrapping ``fri-mon``), or a comma-separated list of those;
        each day may be named once. Values: a list of ``"HH:MM-HH:MM"`` strings
        (or one string, intervals separated by commas); an empty list means
        closed. Days not named are closed. ``holidays`` and ``makeup_days``
        take dates or ``"YYYY-MM-DD"`` / ``"YYYY-MM-DD..YYYY-MM-DD"`` strings.
        Raises ValueError naming the bad entry and the accepted format.
        """
        spec = parse_calendar_spec(
            hours, holidays=holidays, makeup_days=makeup_days, makeup_weekday=makeup_weekday
        )
        return cls(
            timezone=timezone,
            weekly_hours=spec.weekly_hours,
            holidays=spec.holidays,
            makeup_days=spec.makeup_days,
            makeup_weekday=spec.makeup_weekday,
        )

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> WorkingCalendar:
        """A 24/7 calendar: business time equals wall-clock time."""
        return cls(timezone=timezone, weekly_hours=(_FULL_DAY,) * 7)

    # -- queries ----------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._zone

    @property
    def is_always_open(self) -> bool:
        """True when every instant is working time (24/7, no holidays)."""
        return self._continuous

    def hours_on(self, day: date) -> tuple[WorkingInterval, ...]:
        """The working intervals of a local date, after holidays and make-up days."""
        if day in self.holidays:
            return ()
        if day in self.makeup_days:
            return self.weekly_hours[self.makeup_weekday]
        return self.weekly_hours[day.weekday()]

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` (aware, any zone) falls in working time."""
        instant = _utc(at, "at")
        if self._continuous:
            return True
        local_day = instant.astimezone(self._zone).date()
        return any(
            start <= instant < end
            for day in (local_day - _DAY, local_day)
            for start, end in self._intervals_on(day)
        )

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) if open, else the start of the next working interval."""
        instant = _utc(at, "at")
        if self._continuous:
            return instant
        for start, _end in self._intervals_from(instant):
            return max(start, instant)
        raise AssertionError("unreachable: _intervals_from never ends")  # pragma: no cover

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) at which ``duration`` of working time has elapsed since ``start``."""
        instant = _utc(start, "start")
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        if self._continuous or not duration:
            return instant + duration
        remaining = duration
        for interval_start, interval_end in self._intervals_from(instant):
            begin = max(interval_start, instant)
            available = interval_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from never ends")  # pragma: no cover

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time between ``a`` and ``b``; negative when ``b`` is before ``a``."""
        first, last = _utc(a, "a"), _utc(b, "b")
        if last < first:
            return -self.business_time_between(last, first)
        if self._continuous:
            return last - first
        total = timedelta(0)
        day = first.astimezone(self._zone).date() - _DAY
        last_day = last.astimezone(self._zone).date()
        while day <= last_day:
            for start, end in self._intervals_on(day):
                overlap = min(end, last) - max(start, first)
                if overlap > timedelta(0):
                    total += overlap
            day += _DAY
        return total

    # -- internals --------------------------------------------------------

    def _intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local date as non-empty UTC ranges, in order."""
        midnight = datetime.combine(day, _MIDNIGHT)
        result: list[tuple[datetime, datetime]] = []
        for interval in self.hours_on(day):
            start = _wall_to_utc(midnight + interval.start_offset, self._zone)
            end = _wall_to_utc(midnight + interval.end_offset, self._zone)
            if end > start:
                result.append((start, end))
        return result

    def _intervals_from(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals ending after ``instant``, in order, without end.

        Raises NoWorkingTimeError after SEARCH_HORIZON_DAYS days without any.
        """
        day = instant.astimezone(self._zone).date() - _DAY
        idle_days = 0
        while idle_days <= SEARCH_HORIZON_DAYS:
            found = False
            for start, end in self._intervals_on(day):
                if end > instant:
                    found = True
                    yield start, end
            idle_days = 0 if found else idle_days + 1
            day += _DAY
        raise NoWorkingTimeError(
            f"calendar {self.timezone!r} has no working time in the {SEARCH_HORIZON_DAYS} days "
            f"after {instant.isoformat()}; check its business hours, holidays and make-up days"
        )


# -- helpers -----------------------------------------------------------------


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Map a naive local wall time to UTC, monotonically in ``wall``.

    An ambiguous time means its first occurrence; a time in a DST gap means the
    first instant after the gap (the transition itself).
    """
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) == wall:
        return early
    # In a gap both folds give instants around the transition; the transition
    # is the first instant whose wall time reaches ``wall``. Transitions fall
    # on whole seconds, so bisect over seconds (a gap is a few hours at most).
    candidates = (early, wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
    low = int(min(candidates).timestamp()) - 1
    high = int(max(candidates).timestamp()) + 1
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
