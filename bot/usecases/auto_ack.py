"""Out-of-hours automatic acknowledgement: one email to a customer who writes while the team is closed.

Called by ingest for a *new* inquiry (not a customer answer in an existing
thread, not spam), inside ingest's transaction, so the acknowledgement is
queued exactly when the inquiry is stored and never otherwise.

Decisions, written down:

- "Closed" is the team's :class:`~routing.business_hours.WorkingCalendar`
  (business hours, holidays, make-up working days) at the instant the
  inquiry arrives. A team with no business hours is always open: no ack.
- The template is the team's ``out_of_hours_ack`` (a reply template name, e.g.
  ``"out_of_hours"``), in the customer's language, else in the templates'
  default language. It is rendered with the same variables as a rep's reply
  except ``rep`` (no rep is involved).
- Once per inquiry: the outbox key is ``email.ack:{inquiry}``; a second
  delivery of the same webhook/email is a duplicate at ingest and never gets
  here, and the key stops any other path from queuing a second one.
- The ack is a real outbound ``Message`` (Message-ID fixed now, In-Reply-To
  the customer's Message-ID when there is one, the ``[#1042]`` subject tag)
  sent through the inquiry's mailbox by the ordinary ``email.send`` delivery,
  and an Event ``auto_acknowledged`` on the timeline. It does not count as a
  first reply: the claim and reply clocks run on.
- Any problem (unknown template, a template error, no mailbox) sends nothing:
  an Event ``auto_ack_failed`` says why, the inquiry is created as usual.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from bot.usecases.replies import ReplyTemplates, reply_subject, template_variables
from bot.usecases.sla import calendar_for
from bot.usecases.views import customer_name
from cards.reply_form import TemplateInfo
from config.schema import TeamSettings
from connectors.mail.smtp import new_message_id
from store import inquiries as repo
from store import outbox
from store.models import Contact, Inquiry, Lane, Message, Status

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _templates(directory: str, default_language: str) -> ReplyTemplates:
    """The template library (read once per configuration, like the service's own)."""
    return ReplyTemplates(directory, default_language)


def is_closed(team: TeamSettings, at: datetime) -> bool:
    """Whether ``team`` is out of its working time at ``at``."""
    calendar = calendar_for(team)
    return not calendar.is_always_open and not calendar.is_open(at)


def _pick(templates: ReplyTemplates, name: str, language: str) -> TemplateInfo | None:
    lang = (language or templates.default_language).split("-")[0].lower()
    return templates.get(f"{lang}/{name}") or templates.get(f"{templates.default_language}/{name}")


async def acknowledge_if_closed(
    ctx: AppContext,
    session: AsyncSession,
    inquiry: Inquiry,
    *,
    customer_message_id: str,
    references: tuple[str, ...],
    now: datetime,
) -> bool:
    """Queue the out-of-hours acknowledgement of a just-created inquiry; True when queued."""
    team = ctx.settings.team(inquiry.team)
    name = team.out_of_hours_ack
    if not name or inquiry.status != Status.NEW.value or not inquiry.contact_email:
        return False
    if not is_closed(team, now):
        return False
    assert inquiry.id is not None
    settings = ctx.settings.templates
    templates = _templates(settings.directory, settings.default_language)
    template = _pick(templates, name, inquiry.language)
    mailbox = ctx.settings.mailbox(inquiry.mailbox)
    contact = await session.get(Contact, inquiry.contact_id)
    name_given = await customer_name(session, inquiry.id)  # this inquiry's, not the contact's first
    problem = ""
    body = ""
    if mailbox is None:
        problem = f"no mailbox {inquiry.mailbox!r} to send from"
    elif template is None:
        problem = f"no reply template {name!r} (in {inquiry.language or '-'} or {templates.default_language})"
    else:
        try:
            body = templates.render(
                template, template_variables(ctx, inquiry, contact, "", name=name_given)
            )
        except ValueError as exc:
            problem = str(exc)
    if problem or mailbox is None or template is None:
        repo.add_event(
            session,
            inquiry,
            at=now,
            actor="system",
            kind="auto_ack_failed",
            data={"template": name, "error": problem[:500]},
        )
        log.warning(
            "out-of-hours acknowledgement not sent",
            extra={"inquiry": inquiry.id, "template": name, "error": problem[:200]},
        )
        return False
    ids = [*references, customer_message_id] if customer_message_id else list(references)
    message = Message(
        inquiry_id=inquiry.id,
        direction="out",
        channel="email",
        message_id=new_message_id(mailbox, inquiry.id),
        in_reply_to=customer_message_id,
        references=" ".join(dict.fromkeys(i for i in ids if i)),
        from_address=mailbox.from_address,
        from_name=mailbox.from_name,
        to_address=inquiry.contact_email,
        subject=reply_subject(inquiry),
        text=body,
        delivery="queued",
        created_at=now,
    )
    session.add(message)
    await session.flush()
    await outbox.enqueue(
        session,
        key=f"email.ack:{inquiry.id}",
        channel="smtp",
        kind="email.send",
        destination=mailbox.name,
        inquiry_id=inquiry.id,
        now=now,
        lane=Lane.BULK,
        payload={"message": message.id, "to_name": name_given},
    )
    data: dict[str, Any] = {
        "message": message.id,
        "to": inquiry.contact_email,
        "template": f"{template.language}/{template.name}",
    }
    repo.add_event(session, inquiry, at=now, actor="system", kind="auto_acknowledged", data=data)
    log.info("out-of-hours acknowledgement queued", extra={"inquiry": inquiry.id})
    return True
