"""The channel page's model: what the page asks for (``ChannelQuery``) and what it shows.

The query comes from the URL (``/web/teams/sales?view=new&owner=mine&q=led&page=2``)
and is parsed leniently: an unknown value is dropped rather than refused, so an
old bookmark still opens a page. The same query string is passed to the live
stream, which then says for every changed card whether it still belongs on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode

from cards.model import Card

OPEN_VIEWS = ("new", "claimed", "replied", "waiting", "follow_up")
ARCHIVE_VIEWS = ("won", "lost", "spam", "closed")
VIEWS = ("open", *OPEN_VIEWS, "archive", *ARCHIVE_VIEWS, "all")
SORTS = ("due", "oldest", "newest", "updated")
PAGE_SIZE = 50
_FIELD_MAX = 100
_QUERY_MAX = 200


def _clip(value: str, limit: int = _FIELD_MAX) -> str:
    return " ".join(value.split())[:limit]


@dataclass(frozen=True)
class ChannelQuery:
    """Filters, sort and page of the channel page; blank means "any"."""

    view: str = "open"
    owner: str = ""  # "", "mine", "none" or a rep id
    priority: str = ""
    country: str = ""
    language: str = ""
    source: str = ""
    q: str = ""
    sort: str = ""  # "" = the view's default
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ChannelQuery:
        view = query.get("view", "open")
        sort = query.get("sort", "")
        try:
            page = max(1, min(int(query.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            view=view if view in VIEWS else "open",
            owner=_clip(query.get("owner", "")),
            priority=_clip(query.get("priority", "")),
            country=_clip(query.get("country", "")).upper(),
            language=_clip(query.get("language", "")),
            source=_clip(query.get("source", "")),
            q=_clip(query.get("q", ""), _QUERY_MAX),
            sort=sort if sort in SORTS else "",
            page=page,
        )

    @property
    def statuses(self) -> tuple[str, ...]:
        """The statuses the view shows (empty: every status)."""
        if self.view == "open":
            return OPEN_VIEWS
        if self.view == "archive":
            return ARCHIVE_VIEWS
        if self.view == "all":
            return ()
        return (self.view,)

    @property
    def effective_sort(self) -> str:
        """The chosen sort, else most overdue first for open work and newest first otherwise."""
        if self.sort:
            return self.sort
        return "due" if self.view == "open" or self.view in OPEN_VIEWS else "newest"

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the page beyond its view."""
        return any((self.owner, self.priority, self.country, self.language, self.source, self.q))

    def params(self, *, with_page: bool = True) -> dict[str, str]:
        """The non-default parameters, for links and the live stream."""
        out: dict[str, str] = {}
        if self.view != "open":
            out["view"] = self.view
        for name in ("owner", "priority", "country", "language", "source", "q", "sort"):
            value = getattr(self, name)
            if value:
                out[name] = value
        if with_page and self.page > 1:
            out["page"] = str(self.page)
        return out

    def url(self, base: str, **changes: object) -> str:
        """``base`` with this query, changed by ``changes`` (a changed filter goes to page 1)."""
        changed = replace(self, **changes) if changes else self  # type: ignore[arg-type]
        if changes and "page" not in changes:
            changed = replace(changed, page=1)
        params = changed.params()
        return f"{base}?{urlencode(params)}" if params else base


@dataclass(frozen=True)
class CardClock:
    """The absolute times behind a card's relative ones, so the page keeps them live."""

    received_at: datetime
    due_at: datetime | None = None
    due_kind: str = ""  # "claim" | "reply" | ""


@dataclass(frozen=True)
class ChannelItem:
    """One card of the channel page with its clock."""

    card: Card
    clock: CardClock | None = None


@dataclass(frozen=True)
class ChannelPage:
    """What the channel page shows: one page of cards, the totals and the filter choices."""

    items: tuple[ChannelItem, ...]
    total: int
    page: int
    page_size: int
    counts: Mapping[str, int] = field(default_factory=dict)
    facets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    owners: tuple[tuple[str, str], ...] = ()  # (rep id, name)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.page_size + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * self.page_size)
