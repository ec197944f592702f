"""Replies: templates (Jinja2, sandboxed, per language) and sending a reply as a threaded email.

Templates live in ``<dir>/<lang>/<name>.j2`` (built-in ones in
``bot/reply_library``; ``[templates] directory`` adds or overrides). The
first line may be a Jinja comment ``{# Title #}`` naming the template in the
picker. Rendering is strict: a variable that is unknown for this customer
(e.g. no name given) is never a blank in the customer's email. Values that are
empty are left undefined on purpose, so the built-in templates give fallbacks
(``{{ customer.name | default("Sir or Madam") }}``); an admin's template without
one gets an error naming the missing value in words ("the customer's name is not
known for this inquiry"), and the editor keeps the rest of the text with a
marker ``⟦the customer's name⟧`` where the value belongs, which send refuses
until the rep replaced it.

Sending: one transaction writes the outbound Message (with its Message-ID,
fixed now so retries reuse it), the ``email.send`` outbox row (interactive
lane), the status change to ``replied``, the event and the card updates.
The first-response time is recorded when the SMTP server accepted the mail
(``bot.runtime.deliveries``), not when it was queued: until then the card and the
inquiry page say "sending…", after a failed attempt "delivery failed — retrying"
with the server's words.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from bot.context import AppContext
from bot.usecases.card_actions import Refusal, authorize, resolve_rep
from bot.usecases.card_sync import queue_card_updates
from bot.usecases.views import customer_name
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
#: Templates claimdesk sends by itself (``bot.usecases.auto_ack``): not offered in a rep's picker.
AUTOMATIC = frozenset({"out_of_hours"})


#: Template values in words, for the rep reading an error ("the customer's name").
VARIABLE_WORDS: dict[str, str] = {
    "customer.name": "the customer's name",
    "customer.first_name": "the customer's first name",
    "customer.email": "the customer's email address",
    "customer.company": "the customer's company",
    "customer.country": "the customer's country",
    "rep.name": "your name",
    "rep.email": "your email address",
    "inquiry.number": "the inquiry number",
    "inquiry.subject": "the inquiry's subject",
    "inquiry.snippet": "the customer's message",
    "company.name": "our company name",
}
MARK_OPEN, MARK_CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧: where a missing value belongs in a draft


class TemplateValues(dict[str, str]):
    """One group of template values (``customer``, ``rep``...), knowing its own name."""

    def __init__(self, group: str, values: dict[str, str]) -> None:
        super().__init__(values)
        self.group = group


def variable_words(name: str) -> str:
    """``customer.name`` -> "the customer's name" (unknown names are quoted as written)."""
    return VARIABLE_WORDS.get(name, f"the value {{{{ {name} }}}}")


class _MissingValue(StrictUndefined):
    """Strict, but its error names the missing value in words, not ``'dict object' has no attribute``."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        return f"{variable_words(_missing_name(self))} is not known for this inquiry"


def _missing_name(value: Undefined) -> str:
    owner = value._undefined_obj
    group = getattr(owner, "group", "")
    name = str(value._undefined_name or "?")
    return f"{group}.{name}" if group else name


class _MarkedValue(Undefined):
    """A missing value rendered as a visible marker (the draft shown beside the error)."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{MARK_OPEN}{variable_words(_missing_name(self))}{MARK_CLOSE}"


class ReplyTemplates:
    """The template library: built-in plus the admin's directory."""

    def __init__(self, directory: str = "", default_language: str = "en") -> None:
        self.default_language = default_language
        self._env = SandboxedEnvironment(
            undefined=_MissingValue, autoescape=False, keep_trailing_newline=False
        )
        self._marking = SandboxedEnvironment(
            undefined=_MarkedValue, autoescape=False, keep_trailing_newline=False
        )
        self._templates: dict[tuple[str, str], TemplateInfo] = {}
        builtin = resources.files("bot.usecases").joinpath("reply_library")
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
        except UndefinedError as exc:
            message = str(exc.message or exc)
            raise ValueError(
                f"{template.title}: {message}; write it in where the text shows "
                f"{MARK_OPEN}…{MARK_CLOSE}, or choose another template"
            ) from None
        except TemplateError as exc:
            message = str(exc.message or exc)
            raise ValueError(f"{template.language}/{template.name}: {message}") from None

    def render_marked(self, template: TemplateInfo, variables: dict[str, Any]) -> str:
        """The text with ``⟦...⟧`` markers where values are missing ("" if it cannot render)."""
        try:
            return self._marking.from_string(template.source).render(**variables).strip() + "\n"
        except TemplateError:
            return ""


def _defined(group: str, **values: str) -> TemplateValues:
    return TemplateValues(group, {k: v for k, v in values.items() if v})


def template_variables(
    ctx: AppContext,
    inquiry: Inquiry,
    contact: Contact | None,
    rep_id: str,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """What a template may use. ``name``: the customer's name as given in this inquiry
    (``bot.usecases.views.customer_name``); the contact's stored name only when not given.

    The values are data: they are passed to the sandboxed template, never rendered
    themselves, so a customer's ``{{ 7*7 }}`` stays those characters.
    """
    rep = ctx.settings.rep(rep_id)
    box = ctx.settings.mailbox(inquiry.mailbox)
    if name is None:
        name = contact.name if contact else ""
    return {
        "customer": _defined(
            "customer",
            name=name,
            first_name=name.split()[0] if name.split() else "",
            email=inquiry.contact_email,
            company=contact.company if contact else "",
            country=inquiry.country,
        ),
        "rep": _defined("rep", name=rep.name if rep else rep_id, email=rep.email if rep else ""),
        "inquiry": _defined(
            "inquiry", number=str(inquiry.id), subject=inquiry.subject, snippet=inquiry.snippet
        ),
        "company": _defined(
            "company", name=(box.from_name if box else "") or ctx.settings.team(inquiry.team).title
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
    if MARK_OPEN in body or MARK_CLOSE in body:
        start = body.find(MARK_OPEN)
        missing = body[start + 1 : body.find(MARK_CLOSE, start)] if start >= 0 else ""
        return f"replace {MARK_OPEN}{missing}{MARK_CLOSE} in the text with the real value"
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
    """The editor's content: chosen (or first) template rendered for this customer.

    The notice tells the rep, when the editor opens, what Send will do: refuse (someone
    else owns the inquiry), claim it first (unclaimed) or act as lead on another's item.
    A template with a missing value gives the error in words and the text with markers.
    """
    async with transaction(ctx.readers) as session:
        inquiry = await repo.get_inquiry(session, inquiry_id)
        contact = await session.get(Contact, inquiry.contact_id)
        name = await customer_name(session, inquiry_id)
    locale = ctx.locale(inquiry.team)
    choices = templates.for_language(inquiry.language)
    chosen = templates.get(template_key) if template_key else (choices[0] if choices else None)
    body, error = "", ""
    if chosen is not None:
        variables = template_variables(ctx, inquiry, contact, rep_id, name=name)
        try:
            body = templates.render(chosen, variables)
        except ValueError as exc:
            error = str(exc)
            body = templates.render_marked(chosen, variables)
    team = ctx.settings.team(inquiry.team)
    lead = rep_id in team.leads or rep_id in team.managers
    notice, can_claim, may_send = "", False, True
    owner = inquiry.assignee
    if owner is None and inquiry.status == Status.NEW.value:
        notice, can_claim = text(locale, "reply.notice_unclaimed", number=inquiry_id), True
    elif owner and owner != rep_id:
        key = "reply.notice_lead" if lead else "reply.notice_owner"
        notice, may_send = text(locale, key, number=inquiry_id, name=ctx.rep_name(owner)), lead
    return ReplyDraft(
        inquiry_id=inquiry_id,
        to=inquiry.contact_email,
        subject=reply_subject(inquiry),
        body=body,
        template=f"{chosen.language}/{chosen.name}" if chosen else "",
        templates=choices,
        error=error,
        notice=notice,
        can_claim=can_claim,
        may_send=may_send,
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
            # the first response is counted when the SMTP server accepts the mail
            # (``bot.runtime.deliveries``), not now: a reply that cannot be delivered is no answer
            before = inquiry.status
            updated = await repo.change(session, inquiry, now, **values)
            data: dict[str, Any] = {
                "message": message.id,
                "to": inquiry.contact_email,
                "template": template,
                "quote": " ".join(body.split())[:140],
            }
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
    ctx.acted.fire()
    ctx.outbox_ready.fire()
    log.info("reply queued", extra={"inquiry": inquiry_id, "rep": rep_id})
    return ActionOutcome(
        True,
        text(locale, "outcome.reply_queued", number=inquiry_id, email=inquiry.contact_email),
        inquiry_id,
    )
