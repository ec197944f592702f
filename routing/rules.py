"""Rule routing: the first ``[[rules]]`` entry whose conditions all hold decides.

Within one condition a list means "any of"; across conditions all must hold.
Keywords match case-insensitively as substrings of subject + text (CJK text
has no word boundaries, so substring is the only rule that works for 集装箱
and "container" alike). ``explain`` says for each rule why it did or did not
match, for ``claimdesk route --explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from config.schema import RuleSettings, Settings


@dataclass(frozen=True)
class RoutingInput:
    """What routing looks at in an inbound message."""

    source: str
    subject: str
    text: str
    sender: str
    country: str = ""
    language: str = ""
    category: str = ""
    in_business_hours: bool | None = None


@dataclass(frozen=True)
class RoutingDecision:
    """Where an inquiry goes and how it is marked."""

    team: str
    priority: str = "normal"
    assign: str = ""
    tags: tuple[str, ...] = ()
    spam: bool = False
    rule: str = ""  # "" when no rule matched (default team)
    explanation: tuple[str, ...] = field(default=())


def _check(rule: RuleSettings, msg: RoutingInput) -> list[str]:
    """The conditions of ``rule`` that fail for ``msg`` (empty: it matches)."""
    when = rule.when
    failed: list[str] = []
    if when.source and msg.source not in when.source:
        failed.append(f"source {msg.source!r} not in {list(when.source)}")
    if when.keywords:
        haystack = f"{msg.subject}\n{msg.text}".casefold()
        if not any(k.casefold() in haystack for k in when.keywords):
            failed.append(f"none of the keywords {list(when.keywords)} occurs")
    if when.country and msg.country.upper() not in {c.upper() for c in when.country}:
        failed.append(f"country {msg.country or '(unknown)'!r} not in {list(when.country)}")
    if when.language and msg.language.split("-")[0] not in {
        lang.split("-")[0] for lang in when.language
    }:
        failed.append(f"language {msg.language or '(unknown)'!r} not in {list(when.language)}")
    if when.category and msg.category not in when.category:
        failed.append(f"category {msg.category or '(none)'!r} not in {list(when.category)}")
    if when.sender_domain:
        domain = msg.sender.rpartition("@")[2].lower()
        if not any(
            domain == d.lower() or domain.endswith("." + d.lower()) for d in when.sender_domain
        ):
            failed.append(f"sender domain {domain!r} not in {list(when.sender_domain)}")
    if when.hours and msg.in_business_hours is not None:
        inside = msg.in_business_hours
        if (when.hours == "in") != inside:
            failed.append(f"received {'inside' if inside else 'outside'} business hours")
    return failed


def route(settings: Settings, msg: RoutingInput, *, default_team: str = "") -> RoutingDecision:
    """Apply the rules in order; the default team when none matches."""
    notes: list[str] = []
    for index, rule in enumerate(settings.rules):
        failed = _check(rule, msg)
        if failed:
            notes.append(f"rules[{index}] {rule.name!r}: no ({'; '.join(failed)})")
            continue
        then = rule.then
        notes.append(f"rules[{index}] {rule.name!r}: MATCH")
        return RoutingDecision(
            team=then.team or default_team or settings.fallback_team,
            priority=then.priority or "normal",
            assign=then.assign,
            tags=then.tags,
            spam=then.spam,
            rule=rule.name,
            explanation=tuple(notes),
        )
    team = default_team or settings.fallback_team
    notes.append(f"no rule matched: default team {team!r}")
    return RoutingDecision(team=team, explanation=tuple(notes))


def shadowed_rules(settings: Settings) -> list[str]:
    """Rules that can never match because an earlier rule with a subset of conditions always wins first."""
    warnings: list[str] = []
    fields = ("source", "keywords", "country", "language", "category", "sender_domain", "hours")
    for i, later in enumerate(settings.rules):
        for j in range(i):
            earlier = settings.rules[j]
            broader = True
            for name in fields:
                e_val, l_val = getattr(earlier.when, name), getattr(later.when, name)
                if not e_val:
                    continue  # earlier doesn't constrain this: it's at least as broad
                if name == "hours":
                    broader = broader and e_val == l_val
                elif not l_val or not set(l_val) <= set(e_val):
                    broader = False
                if not broader:
                    break
            if broader:
                warnings.append(
                    f"rules[{i}] {later.name!r} is shadowed by rules[{j}] {earlier.name!r}: "
                    "every message it matches is taken by the earlier rule; move it up or narrow the earlier one"
                )
                break
    return warnings
