"""Notices by email: what the clock and the digest tell a rep who cannot be reached on chat.

Who: a rep is reachable on chat when the team has a destination on a platform
where the rep has an id (``slack_id`` on a Slack team ...). Anyone else with an
``email`` gets the nudge, escalation, reminder, wake-up, follow-up or digest by
email instead; with no chat platform at all (the web-only default) that is
everyone. How: an outbox row ``email.notify`` (channel ``smtp``, destination the
team's mailbox: ``team.mailbox``, else a mailbox whose ``team`` is the team)
written in the same transaction as the step or digest it belongs to, under a
key made of the rep and the step (``notify:{rep}:{step key}``), so a step done
once mails once, whatever the retries, restarts and processes. Its Message-ID
is derived from that key, so a retried send after a crash carries the same id.

What: the team's locale, a plain-text body (and an HTML twin escaped here),
``Auto-Submitted: auto-generated``; customer text limited to the subject and a
short snippet. Links to one inquiry are one-click (``connectors.web.one_click``):
"open" and, while it waits for a claim, "claim". They sign the rep in and stop
working after ``security.login_link_max_age``, counted from when the notice was
queued (by the application's clock). Tokens are made when the mail is built,
never stored in the outbox.

Assignment notices (:func:`tell_assignee`, used by the clock's hand-over of an away
rep's inquiries and meant for every assignment) DM the new owner on chat where
they have an id there, and mail them otherwise.

The web inbox shows the same notices on ``/web/for-you`` (:class:`RepNotices`):
the clock's recent Events that named the rep.
"""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from cards.strings import text
from config.schema import MailboxSettings, RepSettings, TeamSettings, parse_duration_minutes
from connectors.channels import DeliveryError
from connectors.mail.smtp import (
    Notification,
    UnbuildableEmail,
    build_notification,
    notification_message_id,
    send_email,
)
from connectors.web.auth import Signer
from connectors.web.one_click import NoticeEntry, one_click_url
from store import outbox
from store.engine import transaction
from store.lifecycle import OPEN_STATUSES
from store.models import Event, Inquiry, Lane, Outbox

log = logging.getLogger(__name__)

NOTICE_OF_STEP = {
    "nudge": "nudge",
    "escalate": "escalation",
    "escalate_reply": "escalation",
    "remind_owner": "reminder",
    "wake": "woke",
    "follow_up": "follow_up",
}
"""The notice an email carries, by the clock step's kind."""

SNIPPET = 200


def chat_user(ctx: AppContext, platform: str, rep: RepSettings) -> str:
    """The rep's user id on ``platform`` ("" when unknown there), as the platform reads it
    from the config (``ChatPlatform.user_id``); channels that are no registered platform (the
    recording channel of tests, the web inbox) address reps by their claimdesk id."""
    chat = ctx.platforms.get(platform)
    if chat is not None:
        return chat.user_id(rep)
    if platform in ("web", "slack", "dingtalk", "wecom"):  # a channel standing in for one
        return rep.platform_id(platform)
    return rep.id


def chat_platforms(ctx: AppContext, team: TeamSettings) -> list[str]:
    """The platforms where the team has a destination."""
    return [name for name, channel in ctx.channels.items() if channel.destinations(team)]


def reachable_on_chat(ctx: AppContext, team: TeamSettings, rep: RepSettings) -> bool:
    """True when some platform of the team has both a destination and an id of ``rep``."""
    return any(chat_user(ctx, name, rep) for name in chat_platforms(ctx, team))


def dm_rows(
    ctx: AppContext,
    team: TeamSettings,
    rep: RepSettings,
    *,
    key: str,
    inquiry_id: int,
    now: datetime,
    lane: Lane,
    payload: dict[str, Any],
) -> list[dict[str, Any]]:
    """The outbox rows (``outbox.row_values``) of a DM to ``rep`` on each of the team's
    platforms where they have an id, keyed ``dm:{platform}:{user}:{key}`` (sent once)."""
    rows: list[dict[str, Any]] = []
    for platform in chat_platforms(ctx, team):
        user = chat_user(ctx, platform, rep)
        if user:
            rows.append(
                outbox.row_values(
                    key=f"dm:{platform}:{user}:{key}",
                    channel=platform,
                    kind="dm",
                    destination=user,
                    inquiry_id=inquiry_id,
                    now=now,
                    lane=lane,
                    payload=dict(payload),
                )
            )
    return rows


def notice_mailbox(ctx: AppContext, team: TeamSettings) -> MailboxSettings | None:
    """The mailbox the team's notices go out through (one with SMTP), or None."""
    boxes = [b for b in ctx.settings.mailboxes if b.smtp_host]
    named = next((b for b in boxes if b.name == team.mailbox), None)
    return named or next((b for b in boxes if b.team == team.name), None)


def notice_row(
    ctx: AppContext,
    team: TeamSettings,
    rep: RepSettings,
    *,
    key: str,
    what: str,
    message: str,
    now: datetime,
    inquiry: Inquiry | None = None,
    subject: str = "",
) -> dict[str, Any] | None:
    """The outbox row (``enqueue`` keywords) mailing ``message`` to ``rep``; None when the rep
    takes no notice emails (``email_notices = false``), has no address, or the team has no
    mailbox to send through (logged: nobody can be told)."""
    if not rep.email_notices:  # the rep's choice ([[reps]] email_notices = false): no warning
        log.info("notice %s for %s not mailed: the rep takes no notice emails", key, rep.id)
        return None
    mailbox = notice_mailbox(ctx, team)
    if not rep.email or mailbox is None:
        log.warning(
            "notice %s for %s cannot be mailed: %s",
            key,
            rep.id,
            "the rep has no email" if not rep.email else f"team {team.name} has no SMTP mailbox",
        )
        return None
    max_age = timedelta(minutes=parse_duration_minutes(ctx.settings.security.login_link_max_age))
    payload: dict[str, Any] = {
        "to": rep.email,
        "to_name": rep.name,
        "rep": rep.id,
        "team": team.name,
        "locale": team.locale,
        "what": what,
        "text": message,
        "subject": subject,
        "expires": int((now + max_age).timestamp()),
    }
    if inquiry is not None:
        payload.update(
            number=inquiry.id,
            inquiry_subject=inquiry.subject,
            snippet=(inquiry.snippet or "")[:SNIPPET],
            claim=inquiry.status == "new" and inquiry.assignee is None,
        )
    return {
        "key": key,
        "channel": "smtp",
        "kind": "email.notify",
        "destination": mailbox.name,
        "inquiry_id": inquiry.id if inquiry is not None else None,
        "now": now,
        "payload": payload,
    }


def compose(ctx: AppContext, signer: Signer, payload: dict[str, Any]) -> Notification:
    """The email of one ``email.notify`` row (links signed now, from the row's expiry)."""
    locale = str(payload.get("locale", "en"))

    def t(key: str, **params: object) -> str:
        return text(locale, key, **params)

    number = int(payload.get("number") or 0)
    if number:
        subject = t(
            "notify.subject",
            number=number,
            what=t(f"notify.what.{payload.get('what', 'nudge')}"),
            subject=str(payload.get("inquiry_subject", "")),
        )
    else:
        subject = str(payload.get("subject", "")) or t("notify.what.digest")
    rep = str(payload.get("rep", ""))
    expires = int(payload.get("expires", 0))
    base = ctx.settings.server.base_url
    paragraphs: list[str] = [
        t("notify.greeting", name=payload.get("to_name", "")),
        str(payload["text"]),
    ]
    links: list[tuple[str, str]] = []
    if number:
        snippet = str(payload.get("snippet", "")).strip()
        if snippet:
            paragraphs.append(t("notify.snippet", snippet=snippet))
        links.append(
            (
                "notify.open",
                one_click_url(base, signer.one_click_token(rep, number, "open", expires)),
            )
        )
        if payload.get("claim"):
            links.append(
                (
                    "notify.claim",
                    one_click_url(base, signer.one_click_token(rep, number, "claim", expires)),
                )
            )
    try:
        zone = ZoneInfo(ctx.settings.team(str(payload.get("team", ""))).timezone)
    except KeyError:
        zone = ZoneInfo("UTC")
    until = datetime.fromtimestamp(expires, zone).strftime("%Y-%m-%d %H:%M %Z")
    link_lines = [t(label, number=number, url=url) for label, url in links]
    footer = ([t("notify.links_expire", until=until)] if links else []) + [t("notify.why")]
    body = "\n\n".join(
        [*paragraphs, "\n".join(link_lines), *footer] if links else [*paragraphs, *footer]
    )
    html_links = "".join(
        f'<p><a href="{html.escape(url)}">{html.escape(t(label, number=number, url="").rstrip(": ："))}</a></p>'
        for label, url in links
    )
    html_body = (
        "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
        + html_links
        + "".join(f"<p><small>{html.escape(f)}</small></p>" for f in footer)
    )
    return Notification(
        message_id="",
        to_address=str(payload["to"]),
        to_name=str(payload.get("to_name", "")),
        subject=subject,
        text=body + "\n",
        html=f'<!doctype html><html lang="{html.escape(locale)}"><body>{html_body}</body></html>',
        date=ctx.clock(),
    )


async def tell_assignee(
    session: AsyncSession,
    ctx: AppContext,
    inquiry: Inquiry,
    rep_id: str,
    message: str,
    *,
    key: str,
) -> list[str]:
    """Tell ``rep_id`` that ``inquiry`` is now theirs: a DM on each of the team's platforms
    where they have an id, else an email (``what`` "assigned"). ``key`` names the assignment
    (e.g. ``handed_over:{id}:v{version}``), so it is told once. Returns the outbox keys."""
    rows = assignee_notice_rows(ctx, inquiry, rep_id, message, key=key, now=ctx.clock())
    if rows:
        await session.flush()  # as ``outbox.enqueue`` does: the session's pending objects first
        await outbox.enqueue_many(session, rows)
    return [row["key"] for row in rows]


def assignee_notice_rows(
    ctx: AppContext,
    inquiry: Inquiry,
    rep_id: str,
    message: str,
    *,
    key: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows (``outbox.row_values``) of ``tell_assignee``, without writing them
    (an intake batch queues its new owners' notices together)."""
    rep = ctx.settings.rep(rep_id)
    if rep is None or inquiry.id is None:
        return []
    try:
        team = ctx.settings.team(inquiry.team)
    except KeyError:
        return []
    rows = dm_rows(
        ctx,
        team,
        rep,
        key=key,
        inquiry_id=inquiry.id,
        now=now,
        lane=Lane.BULK,
        payload={"text": message, "locale": team.locale, "rep": rep.id, "card": "reminder"},
    )
    if rows:
        return rows
    row = notice_row(
        ctx,
        team,
        rep,
        key=f"notify:{rep.id}:{key}",
        what="assigned",
        message=message,
        now=now,
        inquiry=inquiry,
    )
    return [] if row is None else [outbox.row_values(lane=Lane.BULK, **row)]


async def deliver_notice(ctx: AppContext, row: Outbox) -> None:
    """Send one ``email.notify`` row (``DeliveryError`` says whether a retry can help)."""
    mailbox = ctx.settings.mailbox(row.destination)
    if mailbox is None:
        raise DeliveryError(f"mailbox {row.destination!r} is no longer configured", permanent=True)
    security = ctx.settings.security
    signer = Signer(
        security.secret_key,
        login_max_age=parse_duration_minutes(security.login_link_max_age) * 60,
        session_max_age=parse_duration_minutes(security.session_max_age) * 60,
    )
    note = replace(
        compose(ctx, signer, dict(row.payload)),
        message_id=notification_message_id(mailbox, row.key),
    )
    try:
        email = build_notification(mailbox, note)
    except UnbuildableEmail as exc:
        raise DeliveryError(str(exc), permanent=True) from exc
    await send_email(mailbox, email)


_NOTICE_EVENTS = ("nudged", "escalated", "reminded", "snooze_ended", "follow_up_due", "handed_over")


class RepNotices:
    """The web inbox's "for you" list: the clock's recent notices that named the rep."""

    def __init__(self, ctx: AppContext, *, days: int = 7, limit: int = 50) -> None:
        self.ctx = ctx
        self.days = days
        self.limit = limit

    def _local(self, team: str, at: datetime) -> str:
        try:
            zone = ZoneInfo(self.ctx.settings.team(team).timezone)
        except KeyError:
            zone = ZoneInfo("UTC")
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    async def notices_for(self, rep_id: str) -> list[NoticeEntry]:
        teams = [t.name for t in self.ctx.settings.teams if rep_id in t.rep_ids()]
        if not teams:
            return []
        since = self.ctx.clock() - timedelta(days=self.days)
        async with transaction(self.ctx.readers) as session:
            rows = (
                await session.exec(
                    select(Event, Inquiry)
                    .join(Inquiry, col(Inquiry.id) == col(Event.inquiry_id))
                    .where(
                        col(Event.team).in_(teams),
                        col(Event.kind).in_(_NOTICE_EVENTS),
                        col(Event.at) >= since,
                        col(Inquiry.status).in_([s.value for s in OPEN_STATUSES]),
                    )
                    .order_by(col(Event.at).desc())
                    .limit(self.limit * 10)
                )
            ).all()
        out: list[NoticeEntry] = []
        seen: set[int] = set()
        for event, inquiry in rows:
            named = [*event.data.get("mentions", ()), *event.data.get("to", ()), event.after]
            if rep_id not in named or inquiry.id is None or inquiry.id in seen:
                continue
            seen.add(inquiry.id)
            out.append(
                NoticeEntry(
                    at=event.at,
                    inquiry_id=inquiry.id,
                    kind=event.kind,
                    subject=inquiry.subject,
                    team=inquiry.team,
                    local=self._local(inquiry.team, event.at),
                )
            )
            if len(out) >= self.limit:
                break
        return out
