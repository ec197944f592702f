"""Renders a Card as an HTML fragment for the built-in web inbox.

Every piece of text is HTML-escaped here; the page's script only swaps whole
fragments, never builds markup from strings. Buttons carry their action id in
``data-action``; the script posts it (with the session's CSRF token).

Accessibility (WCAG AA): the badge's colour comes from the stylesheet
(``badge-<status>``, each at least 4.5:1 and distinct per status), every
control has a name that says which inquiry it acts on ("Apply Set status for
#1042"), every reason box has a label. When the card's clock is known, its
relative times carry the absolute instant (``data-at``) so the page's script
keeps them current.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from cards.escaping import escape_html as e
from cards.model import Button, Card, Select
from cards.strings import duration_words, text
from connectors.web.channel import CardClock
from connectors.web.strings import web_text

#: Labels of the extra form fields (the caller passes them in the team's locale).
DEFAULT_LABELS: dict[str, str] = {
    "reason": "Reason",
    "lost_reason": "Lost reason",
    "follow_up_date": "Follow-up date",
    "apply": "OK",
}


def _select_extras(control: Select, labels: Mapping[str, str], key: str, locale: str) -> str:
    """The fields a status change may need, each shown only when its choice is picked:
    the reason box for won/lost, the team's lost reasons, the follow-up date."""
    parts: list[str] = []
    if control.reasons_for and control.reasons:
        options = "".join(
            f'<option value="{e(o.value)}">{e(o.label)}</option>' for o in control.reasons
        )
        parts.append(
            f'<label class="extra lost-box" data-for="{e(" ".join(control.reasons_for))}" hidden>'
            f"{e(labels['lost_reason'])} "
            f'<select name="reason_code" id="lost-{e(key)}">{options}</select></label>'
        )
    if control.reason_for:
        parts.append(
            f'<label class="extra reason-box" data-for="{e(" ".join(control.reason_for))}" hidden>'
            f"{e(web_text(locale, 'reason_for', number=key))} "
            f'<input name="reason" class="reason" maxlength="500"></label>'
        )
    if control.date_for:
        parts.append(
            f'<label class="extra date-box" data-for="{e(control.date_for)}" hidden>'
            f"{e(labels['follow_up_date'])} "
            f'<input type="date" name="date" class="follow-up-date"></label>'
        )
    return "".join(parts)


def _control(control: Button | Select, labels: Mapping[str, str], key: str, locale: str) -> str:
    if isinstance(control, Button):
        name = e(web_text(locale, "button_for", label=control.label, number=key))
        if control.url:
            return (
                f'<a class="btn" href="{e(control.url)}" aria-label="{name}">{e(control.label)}</a>'
            )
        return (
            f'<button type="button" class="btn btn-{e(control.style)}" '
            f'data-action="{e(control.action_id)}" aria-label="{name}">{e(control.label)}</button>'
        )
    options = "".join(
        f'<option value="{e(o.value)}">{e(o.label)}</option>' for o in control.options
    )
    base = "c" + "".join(ch if ch.isalnum() else "-" for ch in control.action_id)
    choice = e(web_text(locale, "choice_for", what=control.placeholder, number=key))
    apply_name = e(
        web_text(locale, "apply_for", apply=labels["apply"], what=control.placeholder, number=key)
    )
    return (
        f'<form class="select-form" data-action="{e(control.action_id)}">'
        f'<select name="value" id="{base}-value" aria-label="{choice}">'
        f'<option value="" disabled selected>{e(control.placeholder)}</option>{options}</select>'
        f"{_select_extras(control, labels, key, locale)}"
        f'<button type="submit" class="btn" aria-label="{apply_name}">{e(labels["apply"])}</button></form>'
    )


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _relative(at: datetime, now: datetime, locale: str) -> str:
    delta = (now - at).total_seconds()
    if abs(delta) < 5:
        return text(locale, "time.just_now")
    words = duration_words(abs(delta), locale)
    return text(locale, "time.ago" if delta >= 0 else "time.in", duration=words)


def _clock_html(clock: CardClock, now: datetime, locale: str) -> tuple[str, bool]:
    """The footer line with live times, and whether the item is overdue."""
    received = (
        f'<span class="rel" data-kind="received" data-at="{_iso(clock.received_at)}">'
        f"{e(text(locale, 'age.received', ago=_relative(clock.received_at, now, locale)))}</span>"
    )
    if clock.due_at is None or not clock.due_kind:
        return received, False
    overdue = clock.due_at <= now
    if overdue:
        words = text(
            locale,
            "age.overdue",
            duration=duration_words((now - clock.due_at).total_seconds(), locale),
        )
    else:
        words = text(locale, f"age.{clock.due_kind}_due", when=_relative(clock.due_at, now, locale))
    due = (
        f'<span class="rel due{" overdue" if overdue else ""}" data-kind="{e(clock.due_kind)}" '
        f'data-at="{_iso(clock.due_at)}">{e(words)}</span>'
    )
    return f"{received} · {due}", overdue


def render_card_html(
    card: Card,
    *,
    reason_placeholder: str = "Reason",
    apply_label: str = "OK",
    locale: str = "en",
    clock: CardClock | None = None,
    now: datetime | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """An ``<article>`` for the card; its id and version let the page replace stale copies."""
    names = {**DEFAULT_LABELS, "reason": reason_placeholder, "apply": apply_label, **(labels or {})}
    fields = "".join(f"<dt>{e(f.label)}</dt><dd>{e(f.value)}</dd>" for f in card.fields)
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in card.notes)
    actions = "".join(_control(c, names, card.key, locale) for c in card.actions)
    title = e(card.title)
    if card.link_url:
        title = f'<a href="{e(card.link_url)}">{title}</a>'
    overdue = False
    context = e(card.context)
    if clock is not None and now is not None:
        context, overdue = _clock_html(clock, now, locale)
    status = e(card.badge.status)
    return (
        f'<article class="card status-{status} prio-{e(card.priority)}{" is-overdue" if overdue else ""}" '
        f'id="card-{e(card.key)}" data-key="{e(card.key)}" data-version="{card.version}" '
        f'data-status="{status}" aria-labelledby="title-{e(card.key)}">'
        f'<header><span class="badge badge-{status}">{e(card.badge.label)}</span>'
        f'<h2 id="title-{e(card.key)}">{title}</h2></header>'
        f'<dl class="fields">{fields}</dl>'
        f'<blockquote class="snippet">{e(card.snippet)}</blockquote>'
        f"{notes}"
        f'<p class="context">{context}</p>'
        f'<div class="actions">{actions}</div>'
        f"</article>"
    )
