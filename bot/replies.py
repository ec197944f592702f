"""Replies: templates (Jinja2, sandboxed, per language) and sending a reply as a threaded email.

Templates live in ``<dir>/<lang>/<name>.j2`` (built-in ones in
``bot/reply_library``; ``[templates] directory`` adds or overrides). The
first line may be a Jinja comment ``{# Title #}`` naming the template in the
picker. Rendering uses ``StrictUndefined``: a variable that is unknown for
this customer (e.g. no name given) is an error shown to the rep, never a
blank in the customer's email. Values that are empty are left undefined on
purpose, so ``{{ customer.name }}`` with no name fails loudly.

Sending: one transaction writes the outbound Message (with its Message-ID,
fixed now so retries reuse it), the ``email.send`` outbox row (interactive
lane), the status change to ``replied``, the first-response time, the event
and the card updates.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from bot.card_actions import Refusal, authorize, resolve_rep
from bot.card_sync import queue_card_updates
from bot.context import AppContext
from bot.views import customer_name
from cards.actions import ActionOutcome
from cards.reply_form import ReplyDraft, TemplateInfo
from cards.strings import text
from connectors.mail.smtp import OutgoingEmail, UnbuildableEmail, build_reply, new_message_id
from routing.addresses import address_problem
from routing.text_hygiene import line_problem
from store import inquiries as repo
from store import outbox
from store.engine import transaction
from store.lifecycle import REPLYABLE
from store.models import Contact, Inquiry, Lane, Message, Status

log = logging.getLogger(__name__)

_TITLE = re.compile(r"^\{#\s*(.+?)\s*#\}\s*\n?")
#: Templates claimdesk sends by itself (``bot.auto_ack``): not offered in a rep's picker.
AUTOMATIC = frozenset({"out_of_hours"})


class ReplyTemplates:
    """The template library: built-in plus the admin's directory."""

    def __init__(self, directory: str = "", default_language: str = "en") -> None:
        self.default_language = default_language
        self._env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self._templates: dict[tuple[str, str], TemplateInfo] = {}
        builtin = resources.files("bot").joinpath("reply_library")
        self._load(Path(str(builtin)))
        if directory:
            self._load(Path(directory))

    def _load(self, root: Path) -> None:
        if not root.is_dir():
            return
        for path in sorted(root.glob("*/*.j2")):
            source = path.read_text(encoding="utf-8")
            match = _TITLE.match(source)
            title = match.group(1) if match else path.stem.replace("_", " ").capitalize()
            body = source[match.end() :] if match else source
            lang = path.parent.name
            self._templates[(lang, path.stem)] = TemplateInfo(lang, path.stem, title, body)

    def for_language(self, language: str) -> tuple[TemplateInfo, ...]:
        """Templates in ``language`` first, then the default language's."""
        lang = (language or self.default_language).split("-")[0].lower()
        primary = [
            t for (lng, name), t in self._templates.items() if lng == lang and name not in AUTOMATIC
        ]
        fallback = [
            t
            for (lng, name), t in self._templates.items()
            if lng == self.default_language and lng != lang and name not in AUTOMATIC
        ]
        return tuple(primary + fallback)

    def get(self, key: str) -> TemplateInfo | None:
        lang, _, name = key.partition("/")
        return self._templates.get((lang, name))

    def render(self, template: TemplateInfo, variables: dict[str, Any]) -> str:
        """Render; ``ValueError`` with a rep-readable message on any template problem."""
        try:
            return self._env.from_string(template.source).render(**variables).strip() + "\n"
        except TemplateError as exc:
            message = str(exc.message or exc)
            match = re.search(r"'(\w+)' has no attribute '(\w+)'|'(\w+)' is undefined", message)
            if match and match.group(2):
                message = f"{{{{ {match.group(1)}.{match.group(2)} }}}} is not known for this inquiry; edit the text or choose another template"
            elif match and match.group(3):
                message = f"{{{{ {match.group(3)} }}}} is not a template variable"
            raise ValueError(f"{template.language}/{template.name}: {message}") from None


def _defined(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def template_variables(
    ctx: AppContext,
    inquiry: Inquiry,
    contact: Contact | None,
    rep_id: str,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """What a template may use. ``name``: the customer's name as given in this inquiry
    (``bot.views.customer_name``); the contact's stored name only when not given.

    The values are data: they are passed to the sandboxed template, never rendered
    themselves, so a customer's ``{{ 7*7 }}`` stays those characters.
    """
    rep = ctx.settings.rep(rep_id)
    box = ctx.settings.mailbox(inquiry.mailbox)
    if name is None:
        name = contact.name if contact else ""
    return {
        "customer": _defined(
            name=name,
            first_name=name.split()[0] if name.split() else "",
            email=inquiry.contact_email,
            company=contact.company if contact else "",
            country=inquiry.country,
        ),
        "rep": _defined(name=rep.name if rep else rep_id, email=rep.email if rep else ""),
        "inquiry": _defined(
            number=str(inquiry.id), subject=inquiry.subject, snippet=inquiry.snippet
        ),
        "company": _defined(
            name=(box.from_name if box else "") or ctx.settings.team(inquiry.team).title
        ),
    }


def reply_subject(inquiry: Inquiry) -> str:
    subject = inquiry.subject or ""
    if not subject.lower().startswith(("re:", "回复", "答复")):
        subject = f"Re: {subject}"
    tag = f"[#{inquiry.id}]"
    return subject if tag in subject else f"{subject} {tag}"


_MAX_BODY = 100_000


def reply_problem(subject: str, body: str) -> str | None:
    """What is wrong with what a rep typed (subject, body), in words for the rep; None when fine."""
    if len(subject) > 900:
        return "the subject is longer than 900 characters"
    problem = line_problem(subject)
    if problem:
        return f"the subject {problem}"
    if len(body) > _MAX_BODY:
        return f"the text is longer than {_MAX_BODY} characters"
    for char in body:
        if char in "\r\n\t":
            continue
        if ord(char) < 32 or ord(char) == 127 or 0xD800 <= ord(char) <= 0xDFFF:
            return f"the text contains the invisible control character U+{ord(char):04X}"
    return None


def outgoing_email(message: Message, to_name: str) -> OutgoingEmail:
    """The stored outbound message as the SMTP layer's ``OutgoingEmail``."""
    return OutgoingEmail(
        message_id=message.message_id,
        to_address=message.to_address,
        to_name=to_name,
        subject=message.subject,
        text=message.text,
        in_reply_to=message.in_reply_to,
        references=tuple(message.references.split()),
        date=message.created_at,
        auto_submitted=not message.author,
    )


async def draft_reply(
    ctx: AppContext, templates: ReplyTemplates, inquiry_id: int, rep_id: str, template_key: str = ""
) -> ReplyDraft:
    """The editor's content: chosen (or first) template rendered for this customer."""
    async with transaction(ctx.readers) as session:
        inquiry = await repo.get_inquiry(session, inquiry_id)
        contact = await session.get(Contact, inquiry.contact_id)
        name = await customer_name(session, inquiry_id)
    choices = templates.for_language(inquiry.language)
    chosen = templates.get(template_key) if template_key else (choices[0] if choices else None)
    body, error = "", ""
    if chosen is not None:
        try:
            body = templates.render(
                chosen, template_variables(ctx, inquiry, contact, rep_id, name=name)
            )
        except ValueError as exc:
            error = str(exc)
    return ReplyDraft(
        inquiry_id=inquiry_id,
        to=inquiry.contact_email,
        subject=reply_subject(inquiry),
        body=body,
        template=f"{chosen.language}/{chosen.name}" if chosen else "",
        templates=choices,
        error=error,
    )


async def send_reply(
    ctx: AppContext,
    *,
    inquiry_id: int,
    platform: str,
    user: str,
    subject: str,
    body: str,
    template: str = "",
    rep_id: str | None = None,
) -> ActionOutcome:
    """Queue the reply email and mark the inquiry replied (claiming it first if it was new).

    ``rep_id``: the rep behind ``user`` when the caller resolved it already."""
    rep_id = rep_id or resolve_rep(ctx, platform, user)
    locale = "en"
    try:
        async with transaction(ctx.sessions) as session:
            try:
                inquiry = await repo.get_inquiry(session, inquiry_id)
            except repo.NotFound:
                raise Refusal(
                    "not_found", text(locale, "refuse.not_found", number=inquiry_id)
                ) from None
            locale = ctx.locale(inquiry.team)
            team = ctx.settings.team(inquiry.team)
            authorize(ctx, inquiry.team, rep_id, locale, assignee=inquiry.assignee, owner_only=True)
            assert rep_id is not None
            if Status(inquiry.status) not in REPLYABLE:
                raise Refusal(
                    "invalid",
                    text(
                        locale,
                        "refuse.bad_move",
                        number=inquiry_id,
                        before=text(locale, f"status.{inquiry.status}"),
                        after=text(locale, "status.replied"),
                    ),
                )
            if not body.strip():
                raise Refusal("invalid", text(locale, "refuse.empty_reply"))
            # The body is the rep's text, sent as it is: it is never rendered again, so
            # braces quoted from the customer ("{{ ... }}") are plain characters.
            problem = reply_problem(subject, body)
            if problem:
                raise Refusal("invalid", text(locale, "refuse.bad_reply", problem=problem))
            mailbox = ctx.settings.mailbox(inquiry.mailbox)
            if mailbox is None:
                raise Refusal("invalid", text(locale, "refuse.no_mailbox", team=team.title))
            if not inquiry.contact_email:
                raise Refusal("invalid", text(locale, "refuse.no_email"))
            bad_address = address_problem(inquiry.contact_email)
            if bad_address:
                raise Refusal(
                    "invalid",
                    text(
                        locale,
                        "refuse.bad_reply",
                        problem=f"the customer's address {inquiry.contact_email!r}: {bad_address}",
                    ),
                )
            now = ctx.clock()
            if inquiry.status == Status.NEW.value:
                claim = await repo.claim(session, inquiry_id, rep_id, now)
                if not claim.won:
                    raise repo.Conflict(inquiry_id)
                inquiry = claim.inquiry
                repo.add_event(
                    session,
                    inquiry,
                    at=now,
                    actor=rep_id,
                    kind="claimed",
                    before=Status.NEW.value,
                    after=Status.CLAIMED.value,
                )
            thread = await repo.messages(session, inquiry_id)
            ids = [m.message_id for m in thread if m.message_id]
            last_in = next(
                (m for m in reversed(thread) if m.direction == "in" and m.message_id), None
            )
            to_name = await customer_name(session, inquiry_id)
            message = Message(
                inquiry_id=inquiry_id,
                direction="out",
                channel="email",
                message_id=new_message_id(mailbox, inquiry_id),
                in_reply_to=last_in.message_id if last_in else "",
                references=" ".join(ids[-20:]),
                from_address=mailbox.from_address,
                from_name=mailbox.from_name,
                to_address=inquiry.contact_email,
                subject=subject.strip() or reply_subject(inquiry),
                text=body.replace("\r\n", "\n"),
                author=rep_id,
                delivery="queued",
                created_at=now,
            )
            try:  # what cannot be built now never would: refuse it here, not in the worker
                build_reply(mailbox, outgoing_email(message, to_name))
            except UnbuildableEmail as exc:
                raise Refusal(
                    "invalid", text(locale, "refuse.bad_reply", problem=str(exc))
                ) from None
            session.add(message)
            await session.flush()
            values: dict[str, Any] = {
                "status": Status.REPLIED.value,
                "reply_due_at": None,
                "next_due_at": None,
            }
            first = inquiry.first_reply_at is None
            if first:
                values["first_reply_at"] = now
            before = inquiry.status
            updated = await repo.change(session, inquiry, now, **values)
            data: dict[str, Any] = {
                "message": message.id,
                "to": inquiry.contact_email,
                "template": template,
                "quote": " ".join(body.split())[:140],
            }
            if first:
                data["first_response_seconds"] = int((now - inquiry.received_at).total_seconds())
            repo.add_event(
                session,
                updated,
                at=now,
                actor=rep_id,
                kind="replied",
                before=before,
                after=Status.REPLIED.value,
                data=data,
            )
            await outbox.enqueue(
                session,
                key=f"email.send:{message.id}",
                channel="smtp",
                kind="email.send",
                destination=mailbox.name,
                inquiry_id=inquiry_id,
                now=now,
                lane=Lane.INTERACTIVE,
                payload={"message": message.id, "to_name": to_name},
            )
            await queue_card_updates(
                session,
                ctx,
                updated,
                lane=Lane.INTERACTIVE,
                note=f"{ctx.rep_name(rep_id)} replied: “{data['quote']}”",
            )
    except Refusal as refusal:
        ctx.metrics.actions.labels("reply", refusal.code).inc()
        return ActionOutcome(False, refusal.message, inquiry_id, refusal.code)
    except repo.Conflict:
        return ActionOutcome(
            False, text(locale, "refuse.conflict", number=inquiry_id), inquiry_id, "conflict"
        )
    ctx.metrics.actions.labels("reply", "ok").inc()
    ctx.changed.fire()
    ctx.outbox_ready.fire()
    log.info("reply queued", extra={"inquiry": inquiry_id, "rep": rep_id})
    return ActionOutcome(
        True,
        text(locale, "outcome.reply_queued", number=inquiry_id, email=inquiry.contact_email),
        inquiry_id,
    )
