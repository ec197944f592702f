"""The web inbox's HTTP side: pages, the live stream (SSE) and the action endpoints.

It talks to the application only through ``InboxBackend`` (implemented in
``bot``): it never reads the database. Every route but ``/web/login`` needs a
valid session; every POST also needs the CSRF token. Cards arrive as
``Card`` objects and are rendered here with ``connectors.web.render``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from cards.actions import (
    Action,
    ActionOutcome,
    BadActionId,
    BadInquiryId,
    parse_action,
    parse_inquiry_id,
)
from cards.model import Card
from cards.reply_form import ReplyDraft
from cards.strings import text
from connectors.safe_decode import BadInput, json_of, text_of
from connectors.web.auth import COOKIE, Signer, safe_next
from connectors.web.channel import (
    ARCHIVE_VIEWS,
    OPEN_VIEWS,
    PAGE_SIZE,
    SORTS,
    ChannelItem,
    ChannelPage,
    ChannelQuery,
)
from connectors.web.render import render_card_html
from connectors.web.strings import web_text

log = logging.getLogger(__name__)

REP_KEY = web.AppKey("rep", str)


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an inquiry's timeline, ready to show."""

    at: datetime
    actor: str
    summary: str
    when: str = ""  # ``at`` in the team's zone with the zone named


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment as listed on the inquiry page; ``blob`` set when its bytes are kept."""

    filename: str
    size: int
    blob: int | None = None


@dataclass(frozen=True)
class AttachmentFile:
    """The bytes of one attachment and the team whose reps may download it."""

    team: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MessageEntry:
    """One message of the conversation."""

    at: datetime
    direction: str
    sender: str
    subject: str
    text: str
    delivery: str = ""  # in words for the rep: "sending…", "delivery failed — retrying: ..."
    attachments: tuple[AttachmentLink, ...] = ()
    when: str = ""  # ``at`` in the team's zone with the zone named
    delivery_state: str = ""  # "sending", "sent", "retrying", "failed" (a CSS hook)


@dataclass(frozen=True)
class InquiryDetail:
    """The inquiry page: card, timeline, conversation."""

    team: str
    card: Card
    timeline: tuple[TimelineEntry, ...] = ()
    messages: tuple[MessageEntry, ...] = field(default=())


@dataclass(frozen=True)
class HeldInquiry:
    """An inquiry as the away / back pages list it."""

    number: int
    subject: str
    holder: str = ""  # who has it now, in words ("" : in the pool)


@dataclass(frozen=True)
class TeamInfo:
    """A team the rep belongs to."""

    name: str
    title: str
    locale: str


class InboxBackend(Protocol):
    """What the web inbox needs from the application."""

    def rep_name(self, rep_id: str) -> str: ...

    def teams_of(self, rep_id: str) -> list[TeamInfo]: ...

    async def channel_page(
        self, team: str, rep_id: str, query: ChannelQuery, page_size: int
    ) -> ChannelPage: ...

    async def channel_matches(
        self, team: str, rep_id: str, query: ChannelQuery, inquiry_id: int
    ) -> bool: ...

    async def channel_counts(
        self, team: str, rep_id: str, query: ChannelQuery
    ) -> dict[str, int]: ...

    def now(self) -> datetime: ...

    async def inquiry_detail(self, inquiry_id: int) -> InquiryDetail | None: ...

    async def act(self, action: Action) -> ActionOutcome: ...

    async def reply_draft(self, inquiry_id: int, rep_id: str, template: str) -> ReplyDraft: ...

    async def send_reply(
        self, inquiry_id: int, rep_id: str, subject: str, body: str, template: str
    ) -> ActionOutcome: ...

    async def attachment(self, blob_id: int) -> AttachmentFile | None: ...

    async def is_away(self, rep_id: str) -> bool: ...

    def leads_teams(self, rep_id: str) -> list[TeamInfo]: ...

    async def escalated_cards(self, rep_id: str) -> list[Card]: ...

    async def escalated_card(self, rep_id: str, inquiry_id: int) -> Card | None: ...

    async def claimed_items(self, rep_id: str) -> list[HeldInquiry]: ...

    async def away_since(self, rep_id: str) -> datetime | None: ...

    async def handed_over(self, rep_id: str, since: datetime) -> list[HeldInquiry]: ...

    async def take_back(self, rep_id: str, numbers: list[int], since: datetime) -> int: ...

    async def set_away(self, rep_id: str, away: bool) -> None: ...

    def subscribe(self, team: str) -> asyncio.Queue[ChannelItem]: ...

    def unsubscribe(self, team: str, queue: asyncio.Queue[ChannelItem]) -> None: ...


_env = Environment(
    loader=PackageLoader("connectors.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


COUNTS_EVERY = 1.0  # seconds between two "counts" events of one stream during a burst


def _count_totals(counts: Mapping[str, int]) -> dict[str, int]:
    """The per-status counts plus the "open" and "archive" sums the view tabs show."""
    return {
        **counts,
        "open": sum(counts.get(v, 0) for v in OPEN_VIEWS),
        "archive": sum(counts.get(v, 0) for v in ARCHIVE_VIEWS),
    }


async def _forward(source: asyncio.Queue[ChannelItem], into: asyncio.Queue[ChannelItem]) -> None:
    """Move every item of ``source`` into ``into`` (one stream over several teams' feeds)."""
    while True:
        into.put_nowait(await source.get())


def _asset(name: str) -> str:
    return resources.files("connectors.web").joinpath("assets", name).read_text(encoding="utf-8")


class WebInbox:
    """Route handlers of the inbox, bound to a backend and a signer."""

    def __init__(
        self,
        backend: InboxBackend,
        signer: Signer,
        *,
        secure_cookies: bool,
        heartbeat: float = 15.0,
    ) -> None:
        self.backend = backend
        self.signer = signer
        self.secure_cookies = secure_cookies
        self.heartbeat = heartbeat
        self._closing = asyncio.Event()

    async def close_streams(self, app: web.Application) -> None:
        """``on_shutdown`` hook: end every open live stream so the server stops promptly.

        aiohttp waits for running handlers on shutdown (60 s, then cancels the request,
        then 60 s more): an open inbox tab would hold ``claimdesk serve`` for two
        minutes. Browsers reconnect by themselves (``retry: 2000``) when it is back.
        """
        self._closing.set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/web/login", self.login),
            web.get("/web/", self.home),
            web.get("/web/assets/{name}", self.asset),
            web.get("/web/teams/{team}", self.team_page),
            web.get("/web/teams/{team}/events", self.events),
            web.post("/web/actions", self.action),
            web.get("/web/inquiries/{id:\\d+}", self.inquiry_page),
            web.get("/web/inquiries/{id:\\d+}/reply", self.reply_page),
            web.post("/web/inquiries/{id:\\d+}/reply", self.reply_send),
            web.post("/web/logout", self.logout),
            web.get("/web/away", self.away_page),
            web.post("/web/away", self.away),
            web.get("/web/back", self.back_page),
            web.post("/web/back", self.take_back),
            web.get("/web/escalated", self.escalated_page),
            web.get("/web/escalated/events", self.escalated_events),
            web.get("/web/attachments/{id:\\d+}", self.download),
        ]

    # -- session helpers -------------------------------------------------
    def _rep(self, request: web.Request) -> str:
        cookie = request.cookies.get(COOKIE, "")
        rep = self.signer.check_session(cookie) if cookie else None
        if rep is None or not self.backend.teams_of(rep):
            raise web.HTTPUnauthorized(
                text="Sign in with the link from `claimdesk web-link <rep>` (ask your admin).",
                content_type="text/plain",
            )
        return rep

    def _check_csrf(self, request: web.Request, token: str) -> None:
        if not self.signer.check_csrf(request.cookies.get(COOKIE, ""), token):
            raise web.HTTPForbidden(
                text="missing or invalid CSRF token; reload the page", content_type="text/plain"
            )

    def _team(self, rep: str, name: str) -> Any:
        team = next((t for t in self.backend.teams_of(rep) if t.name == name), None)
        if team is None:
            raise web.HTTPForbidden(
                text="you are not a member of this team", content_type="text/plain"
            )
        return team

    @staticmethod
    def _id(request: web.Request) -> int:
        """The ``{id}`` of the path; 404 for digits no inquiry or attachment can have."""
        try:
            return parse_inquiry_id(request.match_info["id"])
        except BadInquiryId as exc:
            raise web.HTTPNotFound(text=str(exc), content_type="text/plain") from None

    @staticmethod
    async def _form(request: web.Request) -> Mapping[str, Any]:
        """A posted form, decoded safely (an unknown charset or bad bytes are a 400)."""
        try:
            if request.content_type == "multipart/form-data":
                return await request.post()
            body = await request.read()
            return dict(parse_qsl(text_of(body, request.charset), keep_blank_values=True))
        except (BadInput, ValueError, LookupError) as exc:
            raise web.HTTPBadRequest(
                text=f"bad form: {str(exc).splitlines()[0][:120] if str(exc) else 'undecodable'}",
                content_type="text/plain",
            ) from None

    def _page(self, template: str, **context: Any) -> web.Response:
        html = _env.get_template(template).render(**context)
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    def _card_html(self, card: Card, locale: str, item: ChannelItem | None = None) -> str:
        return render_card_html(
            card,
            reason_placeholder=text(locale, "web.reason_words"),
            apply_label=text(locale, "web.apply"),
            locale=locale,
            clock=item.clock if item is not None else None,
            now=self.backend.now(),
            labels={
                "lost_reason": text(locale, "web.lost_reason"),
                "follow_up_date": text(locale, "web.follow_up_date"),
            },
        )

    async def _common(self, request: web.Request, rep: str, team: Any) -> dict[str, Any]:
        """What every page's frame (``base.html``) shows."""
        return {
            "team": team,
            "teams": self.backend.teams_of(rep),
            "rep_name": self.backend.rep_name(rep),
            "csrf": self.signer.csrf_token(request.cookies.get(COOKIE, "")),
            "away": await self.backend.is_away(rep),
            "here": request.path_qs,
            "leads": bool(self.backend.leads_teams(rep)),
            "t": lambda key, **kw: text(team.locale, key, **kw),
        }

    # -- pages -------------------------------------------------------------
    async def login(self, request: web.Request) -> web.Response:
        rep = self.signer.check_login_token(request.query.get("token", ""))
        if rep is None or not self.backend.teams_of(rep):
            return web.Response(
                status=401,
                text="This sign-in link is invalid or expired; ask for a new one.",
                content_type="text/plain",
            )
        # ``next``: where the link leads after sign-in (a platform's "Reply" link); our pages only
        response = web.HTTPFound(safe_next(request.query.get("next", "")))
        response.set_cookie(
            COOKIE,
            self.signer.session_cookie(rep),
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
            max_age=self.signer.session_max_age,
            path="/",
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPFound("/web/")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def home(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        raise web.HTTPFound(f"/web/teams/{self.backend.teams_of(rep)[0].name}")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"app.js": "application/javascript", "app.css": "text/css"}
        if name not in types:
            raise web.HTTPNotFound()
        return web.Response(
            text=_asset(name), content_type=types[name], headers={"Cache-Control": "no-cache"}
        )

    async def team_page(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        team = self._team(rep, request.match_info["team"])
        query = ChannelQuery.from_query(request.query)
        page = await self.backend.channel_page(team.name, rep, query, PAGE_SIZE)
        if query.page > page.pages:  # past the end (items left the view): the last page
            query = ChannelQuery.from_query({**request.query, "page": str(page.pages)})
            page = await self.backend.channel_page(team.name, rep, query, PAGE_SIZE)
        base = f"/web/teams/{team.name}"
        # always with the page's query (``view=open`` for the default page), so the stream
        # sends this page's counts (and, when filtered, whether each card belongs on it)
        stream = f"{base}/events?" + urlencode(query.params() or {"view": query.view})
        return self._page(
            "team.html",
            team=team,
            teams=self.backend.teams_of(rep),
            rep_name=self.backend.rep_name(rep),
            cards=[self._card_html(i.card, team.locale, i) for i in page.items],
            channel=page,
            query=query,
            base=base,
            stream=stream,
            open_views=OPEN_VIEWS,
            archive_views=ARCHIVE_VIEWS,
            sorts=SORTS,
            w=lambda key, **kw: web_text(team.locale, key, **kw),
            totals=_count_totals(page.counts),
            skip_to="cards",
            skip_label=web_text(team.locale, "skip"),
            csrf=self.signer.csrf_token(request.cookies.get(COOKIE, "")),
            away=await self.backend.is_away(rep),
            here=request.path,
            leads=bool(self.backend.leads_teams(rep)),
            t=lambda key, **kw: text(team.locale, key, **kw),
        )

    async def inquiry_page(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        detail = await self.backend.inquiry_detail(self._id(request))
        if detail is None:
            raise web.HTTPNotFound(text="no such inquiry")
        team = self._team(rep, detail.team)
        return self._page(
            "inquiry.html",
            **await self._common(request, rep, team),
            detail=detail,
            card=self._card_html(detail.card, team.locale),
        )

    async def reply_page(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        inquiry_id = self._id(request)
        detail = await self.backend.inquiry_detail(inquiry_id)
        if detail is None:
            raise web.HTTPNotFound(text="no such inquiry")
        team = self._team(rep, detail.team)
        draft = await self.backend.reply_draft(inquiry_id, rep, request.query.get("template", ""))
        answering = next((m for m in reversed(detail.messages) if m.direction == "in"), None)
        return self._page(
            "reply.html",
            **await self._common(request, rep, team),
            detail=detail,
            draft=draft,
            answering=answering,
            chosen_title=next(
                (t.title for t in draft.templates if f"{t.language}/{t.name}" == draft.template),
                "",
            ),
        )

    def _overseer(self, request: web.Request) -> tuple[str, list[TeamInfo]]:
        """The signed-in rep and the teams they lead or manage (403 for anyone else)."""
        rep = self._rep(request)
        teams = self.backend.leads_teams(rep)
        if not teams:
            raise web.HTTPForbidden(
                text="only team leads and managers have an escalated view",
                content_type="text/plain",
            )
        return rep, teams

    async def escalated_page(self, request: web.Request) -> web.Response:
        """Leads and managers: what is escalated to them, with Reassign on each card."""
        rep, teams = self._overseer(request)
        team = teams[0]
        cards = await self.backend.escalated_cards(rep)
        locales = {t.name: t.locale for t in self.backend.teams_of(rep)}
        return self._page(
            "escalated.html",
            **await self._common(request, rep, team),
            cards=[self._card_html(c, locales.get(c.team, team.locale)) for c in cards],
        )

    async def away_page(self, request: web.Request) -> web.Response:
        """Confirm "I'm away": what will happen, and the items that will be handed over."""
        rep = self._rep(request)
        team = self.backend.teams_of(rep)[0]
        items = await self.backend.claimed_items(rep)
        return self._page(
            "away.html",
            **await self._common(request, rep, team),
            items=items,
            back_to=safe_next(request.query.get("next", "")),
        )

    async def back_page(self, request: web.Request) -> web.Response:
        """After "I'm back": the items handed over meanwhile, each taken back with one click."""
        rep = self._rep(request)
        team = self.backend.teams_of(rep)[0]
        since = self._since(request.query.get("since", ""))
        items = await self.backend.handed_over(rep, since)
        return self._page(
            "back.html",
            **await self._common(request, rep, team),
            items=items,
            since=since.isoformat(),
            back_to=safe_next(request.query.get("next", "")),
            taken=request.query.get("taken", ""),
            total=request.query.get("total", ""),
        )

    @staticmethod
    def _since(value: str) -> datetime:
        """The start of the rep's absence (a page parameter; bounded to the last 30 days)."""
        floor = datetime.now(UTC) - timedelta(days=30)
        try:
            since = datetime.fromisoformat(value)
        except ValueError:
            return floor
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return max(since, floor)

    async def take_back(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        form = await self._form(request)
        self._check_csrf(request, str(form.get("csrf", "")))
        since = self._since(str(form.get("since", "")))
        raw = str(form.get("numbers", ""))
        try:
            numbers = [parse_inquiry_id(n) for n in raw.split(",") if n.strip()][:500]
        except BadInquiryId as exc:
            raise web.HTTPBadRequest(text=str(exc), content_type="text/plain") from None
        taken = await self.backend.take_back(rep, numbers, since)
        back_to = safe_next(str(form.get("next", "")))
        query = urlencode(
            {"since": since.isoformat(), "next": back_to, "taken": taken, "total": len(numbers)}
        )
        raise web.HTTPSeeOther(f"/web/back?{query}")

    async def download(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        found = await self.backend.attachment(self._id(request))
        if found is None:
            raise web.HTTPNotFound(text="no such attachment")
        self._team(rep, found.team)
        safe = (
            "".join(c if c.isalnum() or c in "._- " else "_" for c in found.filename)[:120]
            or "attachment"
        )
        quoted = quote(found.filename or safe)
        return web.Response(
            body=found.data,
            headers={
                # never rendered by the browser: customer files may be HTML or SVG with scripts
                "Content-Type": found.content_type
                if "/" in found.content_type
                else "application/octet-stream",
                "Content-Disposition": f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quoted}",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    # -- actions -----------------------------------------------------------
    async def action(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        self._check_csrf(request, request.headers.get("X-CSRF-Token", ""))
        try:
            body = json_of(await request.read(), request.charset)
            action = parse_action(
                str(body.get("action", "")),
                platform="web",
                user=rep,
                value=str(body.get("value", "")),
                reason=str(body.get("reason", "")),
            )
        except (BadInput, AttributeError, BadActionId) as exc:
            return web.json_response({"ok": False, "message": f"bad request: {exc}"}, status=400)
        outcome = await self.backend.act(action)
        status = (
            200
            if outcome.ok
            else (
                409
                if outcome.code in ("lost_race", "conflict")
                else 403
                if outcome.code == "forbidden"
                else 404
                if outcome.code == "not_found"
                else 422
            )
        )
        return web.json_response(
            {
                "ok": outcome.ok,
                "message": outcome.message,
                "code": outcome.code,
                "open_url": outcome.open_url,
            },
            status=status,
        )

    async def away(self, request: web.Request) -> web.Response:
        """The signed-in rep's "I'm away" / "I'm back" toggle (a plain form post, then back)."""
        rep = self._rep(request)
        form = await self._form(request)
        self._check_csrf(
            request, str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token", "")
        )
        value = str(form.get("away", "")).lower()
        if value not in ("1", "0", "true", "false"):
            raise web.HTTPBadRequest(text="away must be 1 or 0", content_type="text/plain")
        going = value in ("1", "true")
        since = None if going else await self.backend.away_since(rep)
        await self.backend.set_away(rep, going)
        # only our own pages: never an open redirect
        back_to = safe_next(str(form.get("next", "")))
        if not going and since is not None:
            query = urlencode({"since": since.isoformat(), "next": back_to})
            raise web.HTTPSeeOther(f"/web/back?{query}")
        raise web.HTTPSeeOther(back_to)

    async def reply_send(self, request: web.Request) -> web.Response:
        rep = self._rep(request)
        inquiry_id = self._id(request)
        form = await self._form(request)
        self._check_csrf(request, str(form.get("csrf", "")))
        outcome = await self.backend.send_reply(
            inquiry_id,
            rep,
            str(form.get("subject", "")),
            str(form.get("body", "")),
            str(form.get("template", "")),
        )
        status = (
            200
            if outcome.ok
            else (
                403 if outcome.code == "forbidden" else 409 if outcome.code == "conflict" else 422
            )
        )
        return web.json_response(
            {"ok": outcome.ok, "message": outcome.message, "code": outcome.code}, status=status
        )

    # -- live stream ---------------------------------------------------------
    async def _stream(
        self,
        request: web.Request,
        queue: asyncio.Queue[ChannelItem],
        send: Callable[[web.StreamResponse, ChannelItem], Awaitable[None]],
    ) -> web.StreamResponse:
        """Server-sent events: ``hello``, then what ``send`` writes for each changed card of
        ``queue``, a keep-alive comment when quiet, until the client or the server goes."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        closing = asyncio.ensure_future(self._closing.wait())
        getter: asyncio.Future[ChannelItem] | None = None
        try:
            await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
            while not closing.done():
                if not queue.empty():
                    # what is queued goes out now: waiting for it (a task and a wait per
                    # card) cost two turns of the event loop a card, and a claim stood
                    # behind a burst's new cards for a second on a busy loop
                    await send(response, queue.get_nowait())
                    continue
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait(
                    {getter, closing}, timeout=self.heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if not getter.done():
                    getter.cancel()
                    if not closing.done():
                        await response.write(b": keep-alive\n\n")
                    continue
                await send(response, getter.result())
        except ConnectionResetError:
            pass
        finally:
            closing.cancel()
            if getter is not None:
                getter.cancel()
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        rep = self._rep(request)
        team = self._team(rep, request.match_info["team"])
        # the channel page passes its filters: each change then says whether the card
        # (still) belongs on that page, so it can enter or leave it live
        query = ChannelQuery.from_query(request.query) if request.query else None
        queue = self.backend.subscribe(team.name)
        counts_sent = float("-inf")

        async def send(response: web.StreamResponse, item: ChannelItem) -> None:
            nonlocal counts_sent
            card = item.card
            match = True
            # the default page (no filter) keeps a card it shows, so whoever acted on it
            # sees the outcome (e.g. "Lost") in place; its counts still follow below
            if query is not None and query.params() and card.key.isdigit():
                match = await self.backend.channel_matches(team.name, rep, query, int(card.key))
            payload = json.dumps(
                {
                    "key": card.key,
                    "version": card.version,
                    "status": card.badge.status,
                    "match": match,
                    "html": self._card_html(card, team.locale, item),
                }
            )
            await response.write(f"event: card\ndata: {payload}\n\n".encode())
            if query is not None:
                # fresh per-status counts once a burst has been written (the queue is
                # empty), and at most once a second during one: one GROUP BY, not one per card
                now = asyncio.get_running_loop().time()
                if queue.empty() or now - counts_sent >= COUNTS_EVERY:
                    counts = await self.backend.channel_counts(team.name, rep, query)
                    await response.write(
                        f"event: counts\ndata: {json.dumps(_count_totals(counts))}\n\n".encode()
                    )
                    counts_sent = now

        try:
            return await self._stream(request, queue, send)
        finally:
            self.backend.unsubscribe(team.name, queue)

    async def escalated_events(self, request: web.Request) -> web.StreamResponse:
        """The escalated view's live stream: a changed card of any team the lead or manager
        oversees enters the view (with Reassign) when it is escalated, and leaves it once
        it is claimed back from the ladder, answered or closed."""
        rep, teams = self._overseer(request)
        locales = {t.name: t.locale for t in teams}
        merged: asyncio.Queue[ChannelItem] = asyncio.Queue()
        subscribed = [(t.name, self.backend.subscribe(t.name)) for t in teams]
        forwarders = [asyncio.create_task(_forward(q, merged)) for _name, q in subscribed]

        async def send(response: web.StreamResponse, item: ChannelItem) -> None:
            card = item.card
            if not card.key.isdigit():
                return
            shown = await self.backend.escalated_card(rep, int(card.key))
            payload = json.dumps(
                {
                    "key": card.key,
                    "version": card.version,
                    "status": card.badge.status,
                    "match": shown is not None,
                    "html": self._card_html(
                        shown or card, locales.get(card.team, teams[0].locale), item
                    ),
                }
            )
            await response.write(f"event: card\ndata: {payload}\n\n".encode())

        try:
            return await self._stream(request, merged, send)
        finally:
            for forwarder in forwarders:
                forwarder.cancel()
            for name, queue in subscribed:
                self.backend.unsubscribe(name, queue)
