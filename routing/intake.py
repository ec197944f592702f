"""Classifying one inbound message, and the explanation kept with the inquiry. Pure, no I/O.

One function for ``bot.usecases.ingest`` and ``claimdesk route --explain``: language
(given by the form, else detected), country (``routing.country``: form, phone,
domain, signature; else what the contact had), category (the form's field,
else the ``[[categories]]`` keyword table), the rules (hours on the target
team's calendar through ``open_at``) and the spam score (its store inputs,
the sender's rate and the team's verdict, given by the caller). The result's
``explanation`` is a JSON-able dict stored in the ``received`` event; the
``explain_lines`` of it are what the CLI prints and the inquiry page shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.schema import Settings
from routing.assignment import AssignmentChoice
from routing.country import CountryGuess, guess_country
from routing.rules import OpenAt, RoutingDecision, RoutingInput, classify_category, route
from routing.spam import SpamInput, SpamVerdict, score


@dataclass(frozen=True)
class IntakeFacts:
    """What classification reads from an inbound message (already cleaned)."""

    source: str
    subject: str
    text: str
    email: str  # the customer's address (Reply-To when it differs from From)
    from_address: str = ""  # the From header's address (may be a relay)
    reply_to: str = ""  # the Reply-To address, when given
    phone: str = ""
    country: str = ""  # as given by the form
    language: str = ""  # as given by the form
    detected_language: str = ""  # detected from subject and text before (when not given)
    category: str = ""  # as given by the form
    headers: Mapping[str, str] = field(default_factory=dict)
    default_team: str = ""
    contact_country: str = ""  # what the store knows of the contact


@dataclass(frozen=True)
class Classification:
    """Everything decided about a message before assignment."""

    decision: RoutingDecision
    language: str
    language_source: str  # "form", "detected" or ""
    country: CountryGuess
    category: str
    category_source: str  # "form", "keywords" or ""
    spam: SpamVerdict
    allowed: bool = False  # the team marked the sender "not spam" before

    @property
    def is_spam(self) -> bool:
        """The score says so, or a rule does (unless the team allowed the sender)."""
        return self.spam.spam or (self.decision.spam and not self.allowed)

    def explanation(
        self, assignment: AssignmentChoice | None = None, *, all_rules: bool = False
    ) -> dict[str, Any]:
        """The JSON kept on the inquiry (the ``received`` event's ``explain``): the rules
        that matched with each condition's result (``all_rules``: every rule's, for the
        CLI; stored on every inquiry, 200 rules' notes would be most of its size)."""
        notes = list(self.decision.explanation)
        if not all_rules:
            notes = [n for n in notes if ": MATCH" in n or n.startswith("no rule matched")]
        data: dict[str, Any] = {
            "rule": self.decision.rule,
            "rules": notes,
            "rules_checked": sum(n.startswith("rules[") for n in self.decision.explanation),
            "team": self.decision.team,
            "priority": self.decision.priority,
            "language": {"code": self.language, "source": self.language_source},
            "country": {
                "code": self.country.code,
                "source": self.country.source,
                "detail": self.country.detail,
            },
            "category": {"name": self.category, "source": self.category_source},
            "spam": {
                "score": self.spam.score,
                "spam": self.is_spam,
                "reasons": list(self.spam.reasons)
                + (["a rule marks it spam"] if self.decision.spam else []),
            },
        }
        if assignment is not None:
            data["assignment"] = {
                "rep": assignment.rep,
                "strategy": assignment.strategy,
                "reason": assignment.reason,
            }
        return data


def classify(
    settings: Settings,
    facts: IntakeFacts,
    *,
    open_at: OpenAt | None = None,
    detect: Callable[[str], str] | None = None,
    recent_from_sender: int = 0,
    verdict: str = "",
) -> Classification:
    """Language, country, category, rules and spam for ``facts``."""
    language, language_source = facts.language, "form" if facts.language else ""
    if not language and facts.detected_language:
        language, language_source = facts.detected_language, "detected"
    if not language and detect is not None:
        language = detect(f"{facts.subject}\n{facts.text}")
        language_source = "detected" if language else ""
    country = guess_country(
        given=facts.country, phone=facts.phone, email=facts.email, text=facts.text
    )
    if not country.code and facts.contact_country:
        country = CountryGuess(facts.contact_country, "contact", "known from earlier messages")
    given = facts.category.strip().lower()
    category = classify_category(settings, facts.category, facts.subject, facts.text)
    category_source = "" if not category else "form" if category == given else "keywords"
    decision = route(
        settings,
        RoutingInput(
            source=facts.source,
            subject=facts.subject,
            text=facts.text,
            sender=facts.email,
            country=country.code,
            language=language,
            category=category,
        ),
        default_team=facts.default_team,
        open_at=open_at,
    )
    sender = facts.from_address or facts.email
    reply_to = facts.reply_to if facts.reply_to and facts.reply_to != sender else ""
    verdict_spam = score(
        SpamInput(
            sender=sender,
            subject=facts.subject,
            text=facts.text,
            reply_to=reply_to,
            headers=facts.headers,
            recent_from_sender=recent_from_sender,
            blocked=verdict == "blocked",
            allowed=verdict == "allowed",
        )
    )
    return Classification(
        decision=decision,
        language=language,
        language_source=language_source,
        country=country,
        category=category,
        category_source=category_source,
        spam=verdict_spam,
        allowed=verdict == "allowed",
    )


def explain_lines(data: Mapping[str, Any], *, only_matches: bool = False) -> list[str]:
    """The stored explanation as lines for people (CLI: every rule; the inquiry page:
    ``only_matches``, the rules that matched with each condition's result)."""
    lines: list[str] = []
    rules = [str(r) for r in data.get("rules") or []]
    if only_matches:
        rules = [r for r in rules if ": MATCH" in r or r.startswith("no rule matched")]
    lines.extend(rules)
    lines.append(
        f"=> team {data.get('team', '?')!r}, priority {data.get('priority', 'normal')}"
        + (f", rule {data['rule']!r}" if data.get("rule") else "")
    )
    lang = data.get("language") or {}
    lines.append(f"language: {lang.get('code') or '?'} ({lang.get('source') or 'unknown'})")
    country = data.get("country") or {}
    detail = f": {country['detail']}" if country.get("detail") else ""
    lines.append(
        f"country: {country.get('code') or '?'} ({country.get('source') or 'unknown'}{detail})"
    )
    category = data.get("category") or {}
    if category.get("name"):
        lines.append(f"category: {category['name']} ({category.get('source', '')})")
    spam = data.get("spam") or {}
    reasons = "; ".join(str(r) for r in spam.get("reasons") or []) or "no signals"
    lines.append(
        f"spam: {'YES' if spam.get('spam') else 'no'}, score {spam.get('score', 0)} ({reasons})"
    )
    assignment = data.get("assignment")
    if assignment:
        rep, reason = assignment.get("rep"), assignment.get("reason")
        if rep:
            lines.append(f"assignment: {rep} ({assignment.get('strategy')}): {reason}")
        else:
            lines.append(f"assignment: none, the team claims from the card ({reason})")
    return lines
