"""The daily digest: its numbers (``DigestReport``), its card and its plain-text form.

``bot.usecases.digest`` reads the store and fills a ``DigestReport``; this module only
presents it. The report round-trips through JSON (``to_dict``/``from_dict``)
because it travels in the outbox row that posts it, so a retried post shows
the same numbers. Durations are seconds of SLA time (business time when the
team counts only that); ``None`` when there was nothing to measure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cards.actions import Verb, encode_action
from cards.model import Badge, Button, Card, CardField, Control
from cards.strings import duration_words, text


@dataclass(frozen=True)
class DigestItem:
    """An open inquiry listed in the digest (oldest open / oldest unclaimed)."""

    number: int
    subject: str
    status: str
    age_seconds: float
    owner: str = ""
    url: str = ""


@dataclass(frozen=True)
class DigestRepRow:
    """One line of the per-rep table."""

    rep: str
    name: str
    claimed: int = 0
    replied: int = 0
    won: int = 0
    lost: int = 0
    open: int = 0
    median_reply_seconds: float | None = None


@dataclass(frozen=True)
class DigestReport:
    """What the digest of one team for one day says."""

    team: str
    team_title: str
    locale: str
    day: str  # the local date the digest is for (ISO); it covers the days before it
    period_first: str  # first local date covered (ISO)
    period_last: str  # last local date covered (ISO)
    new: int = 0
    spam: int = 0
    claimed: int = 0
    replied: int = 0
    won: int = 0
    lost: int = 0
    claim_median_seconds: float | None = None
    claim_p90_seconds: float | None = None
    reply_median_seconds: float | None = None
    reply_p90_seconds: float | None = None
    breaches: int = 0
    escalations: int = 0
    open_now: int = 0
    unclaimed_now: int = 0
    oldest_open: tuple[DigestItem, ...] = ()
    oldest_unclaimed: tuple[DigestItem, ...] = ()
    reps: tuple[DigestRepRow, ...] = ()
    late: bool = False
    due_at: str = ""  # when it was due, in the team's local time (shown when late)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DigestReport:
        values = dict(data)
        values["oldest_open"] = tuple(DigestItem(**i) for i in values.get("oldest_open", ()))
        values["oldest_unclaimed"] = tuple(
            DigestItem(**i) for i in values.get("oldest_unclaimed", ())
        )
        values["reps"] = tuple(DigestRepRow(**r) for r in values.get("reps", ()))
        return cls(**values)

    @property
    def period(self) -> str:
        if self.period_first == self.period_last:
            return self.period_first
        return f"{self.period_first} – {self.period_last}"


def _pair(median: float | None, p90: float | None, locale: str) -> str:
    if median is None or p90 is None:
        return "—"
    return f"{duration_words(median, locale)} / {duration_words(p90, locale)}"


def _item_line(item: DigestItem, locale: str) -> str:
    owner = f" · {item.owner}" if item.owner else ""
    return f"#{item.number} {item.subject} · {text(locale, f'status.{item.status}')} · {duration_words(item.age_seconds, locale)}{owner}"


def rep_table(report: DigestReport) -> list[str]:
    """The per-rep table as aligned text lines (header first)."""
    locale = report.locale
    rows = [text(locale, "digest.rep_header").split(" | ")]
    for r in report.reps:
        median = (
            duration_words(r.median_reply_seconds, locale)
            if r.median_reply_seconds is not None
            else "—"
        )
        rows.append(
            [r.name, str(r.claimed), str(r.replied), str(r.won), str(r.lost), str(r.open), median]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]


def _fields(report: DigestReport) -> tuple[CardField, ...]:
    locale = report.locale
    return (
        CardField(text(locale, "digest.new"), str(report.new)),
        CardField(text(locale, "digest.claimed"), str(report.claimed)),
        CardField(text(locale, "digest.replied"), str(report.replied)),
        CardField(text(locale, "digest.won"), str(report.won)),
        CardField(text(locale, "digest.lost"), str(report.lost)),
        CardField(
            text(locale, "digest.time_to_claim"),
            _pair(report.claim_median_seconds, report.claim_p90_seconds, locale),
        ),
        CardField(
            text(locale, "digest.time_to_reply"),
            _pair(report.reply_median_seconds, report.reply_p90_seconds, locale),
        ),
        CardField(text(locale, "digest.breaches"), str(report.breaches)),
        CardField(text(locale, "digest.escalations"), str(report.escalations)),
        CardField(text(locale, "digest.open_now"), f"{report.open_now} / {report.unclaimed_now}"),
    )


def _sections(report: DigestReport) -> list[str]:
    locale = report.locale
    lines: list[str] = []
    for key, items in (
        ("digest.oldest_unclaimed", report.oldest_unclaimed),
        ("digest.oldest_open", report.oldest_open),
    ):
        lines.append(text(locale, key) + ":")
        lines.extend(f"  {_item_line(i, locale)}" for i in items) if items else lines.append(
            f"  {text(locale, 'digest.none')}"
        )
    lines.append(text(locale, "digest.per_rep") + ":")
    lines.extend(f"  {line}" for line in rep_table(report))
    return lines


def build_digest_card(report: DigestReport) -> Card:
    """The digest as a card for the team channel: numbers as fields, lists and table as text,
    a Claim button per oldest unclaimed item and an Open link per oldest open item."""
    locale = report.locale
    actions: list[Control] = [
        Button(
            text(locale, "digest.claim_button", number=i.number),
            encode_action(Verb.CLAIM, i.number),
            "primary",
        )
        for i in report.oldest_unclaimed[:3]
    ]
    actions += [
        Button(
            text(locale, "digest.open_button", number=i.number),
            encode_action(Verb.OPEN, i.number),
            url=i.url,
        )
        for i in report.oldest_open[:3]
        if i.url
    ]
    notes = (text(locale, "digest.late", when=report.due_at),) if report.late else ()
    return Card(
        key=f"digest:{report.team}:{report.day}",
        version=1,
        title=text(locale, "digest.title", team=report.team_title, period=report.period),
        badge=Badge(
            "digest",
            text(locale, "digest.title", team=report.team_title, period=report.period),
            "#1a73e8",
        ),
        fields=_fields(report),
        snippet="\n".join(_sections(report)),
        notes=notes,
        actions=tuple(actions),
        team=report.team,
    )


def render_digest_text(report: DigestReport) -> str:
    """The digest as plain text (``claimdesk digest`` prints this)."""
    locale = report.locale
    lines = [text(locale, "digest.title", team=report.team_title, period=report.period)]
    if report.late:
        lines.append(text(locale, "digest.late", when=report.due_at))
    lines.extend(f"{f.label}: {f.value}" for f in _fields(report))
    lines.extend(_sections(report))
    return "\n".join(lines) + "\n"
