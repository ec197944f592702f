"""One-click links from notification emails, and the rep's "for you" page.

``GET /web/o/{token}``: the token (``Signer.one_click_token``: rep, inquiry,
action, expiry) is the sign-in, so no prior login is needed. An "open" link
sets the session cookie and goes to the inquiry page. A "claim" link never
claims on GET (mail scanners and link previews fetch links): it signs the rep
in and shows a page with one button that POSTs back to the same URL.

``POST /web/o/{token}`` claims, acting as the token's rep with the token's hash
as the request id, so one link claims at most once (a second use is dropped
by the interaction backend's dedupe) and further uses just open the inquiry.
It needs no CSRF token: the authority is the unguessable, per-rep,
per-inquiry token in the URL itself, which a cross-site form cannot know, and
the claim is idempotent. An expired or forged token gets a 403 page that
points to the web inbox's sign-in.

``GET /web/for-you``: the signed-in rep's recent nudges, escalations and
reminders (the same notices the clock sends), from a ``NoticeSource``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiohttp import web

from cards.actions import Action, Verb
from cards.strings import text
from connectors.web.auth import COOKIE, Signer
from connectors.web.inbox import InboxBackend, _env

KIND_LABELS = {
    "nudged": "notify.what.nudge",
    "escalated": "notify.what.escalation",
    "reminded": "notify.what.reminder",
    "snooze_ended": "notify.what.woke",
    "follow_up_due": "notify.what.follow_up",
    "handed_over": "notify.what.assigned",
}


@dataclass(frozen=True)
class NoticeEntry:
    """One notice for a rep: which inquiry, what happened, when."""

    at: datetime
    inquiry_id: int
    kind: str  # the Event's kind: nudged, escalated, reminded, snooze_ended, follow_up_due, handed_over
    subject: str
    team: str
    local: str = ""  # ``at`` in the team's time zone, as the page shows it


class NoticeSource(Protocol):
    """Where the "for you" list comes from (implemented in ``bot.usecases.notices``)."""

    async def notices_for(self, rep_id: str) -> list[NoticeEntry]: ...


def one_click_url(base_url: str, token: str) -> str:
    """The link a notification email carries."""
    return f"{base_url.rstrip('/')}/web/o/{token}"


_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "Cache-Control": "no-store",
}


def _redirect(location: str, status: int) -> web.Response:
    return web.Response(status=status, headers={**_HEADERS, "Location": location})


class OneClickLinks:
    """Route handlers of the one-click links and the "for you" page."""

    def __init__(
        self,
        backend: InboxBackend,
        notices: NoticeSource,
        signer: Signer,
        *,
        clock: Callable[[], datetime],
        secure_cookies: bool,
    ) -> None:
        self.backend = backend
        self.notices = notices
        self.signer = signer
        self.clock = clock
        self.secure_cookies = secure_cookies

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/web/o/{token}", self.follow),
            web.post("/web/o/{token}", self.claim),
            web.get("/web/for-you", self.for_you),
        ]

    def _check(self, request: web.Request) -> tuple[str, int, str] | None:
        found = self.signer.check_one_click(
            request.match_info["token"], int(self.clock().timestamp())
        )
        if found is None or not self.backend.teams_of(found[0]):
            return None
        return found

    def _invalid(self) -> web.Response:
        return self._page("en", text("en", "oneclick.invalid"), status=403, open_url="/web/")

    def _locale(self, rep: str) -> str:
        teams = self.backend.teams_of(rep)
        return teams[0].locale if teams else "en"

    def _page(
        self,
        locale: str,
        title: str,
        *,
        status: int = 200,
        message: str = "",
        confirm: str = "",
        action: str = "",
        open_url: str = "",
    ) -> web.Response:
        page = _env.get_template("one_click.html").render(
            locale=locale,
            title=title,
            message=message,
            confirm=confirm,
            action=action,
            open_url=open_url,
            open_label=open_url,
        )
        return web.Response(text=page, status=status, content_type="text/html", headers=_HEADERS)

    def _sign_in(self, response: web.StreamResponse, rep: str) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.session_cookie(rep),
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
            max_age=self.signer.session_max_age,
            path="/",
        )

    async def follow(self, request: web.Request) -> web.StreamResponse:
        found = self._check(request)
        if found is None:
            return self._invalid()
        rep, inquiry_id, action = found
        if action == "claim":
            locale = self._locale(rep)
            response: web.StreamResponse = self._page(
                locale,
                text(locale, "oneclick.confirm_title", number=inquiry_id),
                confirm=text(locale, "oneclick.confirm_button", number=inquiry_id),
                action=request.path,
                open_url=f"/web/inquiries/{inquiry_id}",
            )
        else:
            response = _redirect(f"/web/inquiries/{inquiry_id}", 302)
        self._sign_in(response, rep)
        return response

    async def claim(self, request: web.Request) -> web.StreamResponse:
        found = self._check(request)
        if found is None:
            return self._invalid()
        rep, inquiry_id, action = found
        target = f"/web/inquiries/{inquiry_id}"
        response: web.StreamResponse = _redirect(target, 303)
        if action == "claim":
            request_id = (
                "oneclick:" + hashlib.sha256(request.match_info["token"].encode()).hexdigest()[:32]
            )
            outcome = await self.backend.act(
                Action(inquiry_id, Verb.CLAIM, "web", rep, request_id=request_id)
            )
            if not outcome.ok:
                locale = self._locale(rep)
                response = self._page(
                    locale,
                    text(locale, "oneclick.confirm_title", number=inquiry_id),
                    status=409,
                    message=outcome.message,
                    open_url=target,
                )
        self._sign_in(response, rep)
        return response

    async def for_you(self, request: web.Request) -> web.Response:
        cookie = request.cookies.get(COOKIE, "")
        rep = self.signer.check_session(cookie) if cookie else None
        teams = self.backend.teams_of(rep) if rep else []
        if rep is None or not teams:
            raise web.HTTPUnauthorized(
                text="Sign in with the link from `claimdesk web-link <rep>` (ask your admin).",
                content_type="text/plain",
            )
        team = teams[0]
        notices = await self.notices.notices_for(rep)

        def t(key: str, **params: object) -> str:
            return text(team.locale, key, **params)

        rows = [
            {
                "inquiry_id": n.inquiry_id,
                "kind": n.kind,
                "subject": n.subject,
                "local": n.local,
            }
            for n in notices
        ]
        page = _env.get_template("for_you.html").render(
            team=team,
            teams=teams,
            rep_name=self.backend.rep_name(rep),
            csrf=self.signer.csrf_token(cookie),
            here=request.path,
            notices=rows,
            kinds={kind: t(label) for kind, label in KIND_LABELS.items()},
            t=t,
        )
        return web.Response(text=page, content_type="text/html", headers=_HEADERS)
