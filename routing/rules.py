"""Rule routing: ``[[rules]]`` in file order; the first match decides, unless it says ``continue``.

Within one condition a list means "any of"; across conditions all must hold.
``unless`` lists conditions that keep a rule from matching (any one of them).
Keywords match on word boundaries, case- and accent-insensitively, and as
substrings in scripts written without spaces (``routing.keywords``).
``hours = "in" | "out"`` is judged on the *target* team's calendar at arrival
(the caller passes ``open_at``: team name -> open now?). A matching rule with
``continue = true`` applies its ``then`` and evaluation goes on: a later match
overrides team, priority and assignment, tags add up.
``explain`` gives each condition's result, for ``claimdesk route --explain``
and the inquiry page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from config.schema import RuleCondition, RuleSettings, Settings
from routing.keywords import find_keywords


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
    in_business_hours: bool | None = None  # given: overrides the team calendar (tests, explain)


@dataclass(frozen=True)
class ConditionResult:
    """One condition of one rule, evaluated: ``when.keywords: yes (found 'led')``."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {'yes' if self.ok else 'no'} ({self.detail})"


@dataclass(frozen=True)
class RoutingDecision:
    """Where an inquiry goes and how it is marked."""

    team: str
    priority: str = "normal"
    assign: str = ""
    tags: tuple[str, ...] = ()
    spam: bool = False
    rule: str = ""  # the deciding rule ("" when none matched: default team)
    rules: tuple[str, ...] = ()  # every rule that matched and applied, in order
    explanation: tuple[str, ...] = field(default=())


OpenAt = Callable[[str], bool | None]


def _evaluate(
    when: RuleCondition, msg: RoutingInput, team: str, open_at: OpenAt | None, prefix: str
) -> list[ConditionResult]:
    """The result of each condition given in ``when`` (none given: empty list)."""
    results: list[ConditionResult] = []

    def add(name: str, ok: bool, detail: str) -> None:
        results.append(ConditionResult(f"{prefix}.{name}", ok, detail))

    if when.source:
        add("source", msg.source in when.source, f"source {msg.source!r}")
    if when.keywords:
        found = find_keywords(when.keywords, f"{msg.subject}\n{msg.text}")
        add("keywords", bool(found), f"found {found}" if found else "none occurs")
    if when.country:
        wanted = {c.upper() for c in when.country}
        add("country", msg.country.upper() in wanted, f"country {msg.country or '(unknown)'!r}")
    if when.language:
        base = msg.language.split("-")[0]
        wanted = {lang.split("-")[0] for lang in when.language}
        add("language", base in wanted, f"language {msg.language or '(unknown)'!r}")
    if when.category:
        add("category", msg.category in when.category, f"category {msg.category or '(none)'!r}")
    if when.sender_domain:
        domain = msg.sender.rpartition("@")[2].lower()
        ok = any(
            domain == d.lower() or domain.endswith("." + d.lower()) for d in when.sender_domain
        )
        add("sender_domain", ok, f"sender domain {domain!r}")
    if when.hours:
        inside = msg.in_business_hours
        if inside is None and open_at is not None:
            inside = open_at(team)
        if inside is None:
            add("hours", False, f"business hours of team {team!r} unknown")
        else:
            where = "inside" if inside else "outside"
            add("hours", (when.hours == "in") == inside, f"arrived {where} {team!r}'s hours")
    return results


def evaluate_rule(
    rule: RuleSettings, msg: RoutingInput, team: str, open_at: OpenAt | None = None
) -> tuple[bool, list[ConditionResult]]:
    """(matches, each condition's result) for ``rule`` with ``team`` as its target."""
    results = _evaluate(rule.when, msg, team, open_at, "when")
    blockers = [
        ConditionResult(r.name.replace("when.", "unless.", 1), not r.ok, r.detail)
        for r in _evaluate(rule.unless, msg, team, open_at, "when")
    ]
    results.extend(blockers)
    return all(r.ok for r in results), results


def _memo(open_at: OpenAt) -> OpenAt:
    known: dict[str, bool | None] = {}

    def cached(team: str) -> bool | None:
        if team not in known:
            known[team] = open_at(team)
        return known[team]

    return cached


def route(
    settings: Settings,
    msg: RoutingInput,
    *,
    default_team: str = "",
    open_at: OpenAt | None = None,
) -> RoutingDecision:
    """Apply the rules in order; the default team when none matches."""
    if open_at is not None:
        open_at = _memo(open_at)  # many rules, few teams: ask each calendar once
    notes: list[str] = []
    team = default_team or settings.fallback_team
    priority, assign, spam = "normal", "", False
    tags: list[str] = []
    applied: list[str] = []
    for index, rule in enumerate(settings.rules):
        target = rule.then.team or team
        matched, results = evaluate_rule(rule, msg, target, open_at)
        detail = "; ".join(str(r) for r in results) or "no conditions"
        if not matched:
            notes.append(f"rules[{index}] {rule.name!r}: no ({detail})")
            continue
        then = rule.then
        team = target
        priority = then.priority or priority
        assign = then.assign or assign
        spam = spam or then.spam
        tags.extend(t for t in then.tags if t not in tags)
        applied.append(rule.name)
        if then.continue_:
            notes.append(f"rules[{index}] {rule.name!r}: MATCH, continue ({detail})")
            continue
        notes.append(f"rules[{index}] {rule.name!r}: MATCH ({detail})")
        break
    else:
        if not applied:
            notes.append(f"no rule matched: default team {team!r}")
    return RoutingDecision(
        team=team,
        priority=priority,
        assign=assign,
        tags=tuple(tags),
        spam=spam,
        rule=applied[-1] if applied else "",
        rules=tuple(applied),
        explanation=tuple(notes),
    )


def classify_category(settings: Settings, given: str, subject: str, text: str) -> str:
    """The form's category when it names one; else the first ``[[categories]]`` whose
    keywords occur in the message; else empty."""
    names = {c.name for c in settings.categories}
    value = given.strip().lower()
    if value and (value in names or not names):
        return value
    haystack = f"{subject}\n{text}"
    for category in settings.categories:
        if category.keywords and find_keywords(category.keywords, haystack):
            return category.name
    return ""


def shadowed_rules(settings: Settings) -> list[str]:
    """Rules that can never match because an earlier rule with a subset of conditions always wins first."""
    warnings: list[str] = []
    fields = ("source", "keywords", "country", "language", "category", "sender_domain", "hours")
    for i, later in enumerate(settings.rules):
        for j in range(i):
            earlier = settings.rules[j]
            if earlier.then.continue_ or any(getattr(earlier.unless, name) for name in fields):
                continue  # an earlier rule that continues or has exceptions lets others through
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
