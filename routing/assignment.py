"""Who gets a new inquiry: the team's strategy over the reps on duty. Pure, no I/O.

Candidates are the team's members who are not away and have room (``max_open``).
Among them, those who speak the inquiry's language are preferred when any does.
``sticky``: the customer's previous owner wins when a candidate. A rule's
``then.assign`` names a rep (taken when a candidate) or a strategy. The
round-robin position is a counter the store advances atomically (so several
processes share one fair rotation): the chosen rep is ``candidates[turn % n]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.schema import Settings, TeamSettings

STRATEGIES = ("pool", "round_robin", "least_open")


@dataclass(frozen=True)
class AssignmentRequest:
    """What the choice depends on (the caller reads counts and presence from the store)."""

    team: TeamSettings
    language: str = ""
    rule_assign: str = ""  # a rep id or a strategy name from the matching rule
    previous_owner: str = ""  # the customer's last owner (for sticky)
    away: frozenset[str] = frozenset()  # away by config or by their own flag
    open_counts: Mapping[str, int] | None = None  # open inquiries per rep


@dataclass(frozen=True)
class AssignmentChoice:
    """The chosen rep ("" : leave it in the pool) and why, in words for the timeline."""

    rep: str
    reason: str
    strategy: str = "pool"
    needs_turn: bool = False  # round robin: the caller draws a turn and calls ``pick_turn``
    candidates: tuple[str, ...] = ()


def strategy_for(request: AssignmentRequest) -> str:
    if request.rule_assign in STRATEGIES:
        return request.rule_assign
    return request.team.assignment


def needs_open_counts(settings: Settings, request: AssignmentRequest) -> bool:
    """Whether ``choose`` reads ``open_counts``: for ``least_open``, or when a member has a
    ``max_open`` (a plain round robin does not, so the caller need not count)."""
    if strategy_for(request) == "least_open":
        return True
    return any((rep := settings.rep(r)) is not None and rep.max_open for r in request.team.members)


def on_duty(settings: Settings, request: AssignmentRequest) -> tuple[list[str], list[str]]:
    """(members not away and with room, notes on who was skipped and why)."""
    counts = request.open_counts or {}
    skipped: list[str] = []
    ready: list[str] = []
    for rep_id in request.team.members:
        rep = settings.rep(rep_id)
        if rep is None:
            continue
        if rep.away or rep_id in request.away:
            skipped.append(f"{rep_id} away")
        elif rep.max_open and counts.get(rep_id, 0) >= rep.max_open:
            skipped.append(f"{rep_id} full ({counts.get(rep_id, 0)}/{rep.max_open})")
        else:
            ready.append(rep_id)
    return ready, skipped


def candidates(settings: Settings, request: AssignmentRequest) -> tuple[tuple[str, ...], str]:
    """(reps who may get it, a note on who was skipped and why)."""
    ready, skipped = on_duty(settings, request)
    base = request.language.split("-")[0].lower()
    if base:
        speakers = [
            r
            for r in ready
            if any(lang.split("-")[0].lower() == base for lang in settings.rep(r).languages)  # type: ignore[union-attr]
        ]
        if speakers and len(speakers) < len(ready):
            skipped.append(f"preferring {base} speakers")
            ready = speakers
    return tuple(ready), ", ".join(skipped)


def choose(settings: Settings, request: AssignmentRequest) -> AssignmentChoice:
    """Decide, except the round-robin turn (``needs_turn``: draw it, then ``pick_turn``)."""
    strategy = strategy_for(request)
    ready, note = candidates(settings, request)
    suffix = f"; {note}" if note else ""
    named = request.rule_assign if request.rule_assign not in STRATEGIES else ""
    if named:
        if named in ready:
            return AssignmentChoice(named, f"rule names {named}{suffix}", "rule", candidates=ready)
        note = f"{named} named by the rule is not available{suffix}"
        suffix = f"; {note}"
    # The customer's own rep beats the language preference: they have spoken before.
    if request.team.sticky and request.previous_owner in on_duty(settings, request)[0]:
        owner = request.previous_owner
        return AssignmentChoice(
            owner, f"returning customer of {owner}{suffix}", "sticky", candidates=ready
        )
    if strategy == "pool":
        return AssignmentChoice("", f"pool{suffix}", "pool", candidates=ready)
    if not ready:
        return AssignmentChoice(
            "", f"{strategy}: nobody on duty{suffix}", strategy, candidates=ready
        )
    if strategy == "least_open":
        counts = request.open_counts or {}
        rep = min(ready, key=lambda r: (counts.get(r, 0), ready.index(r)))
        return AssignmentChoice(
            rep, f"least open ({counts.get(rep, 0)} open){suffix}", strategy, candidates=ready
        )
    return AssignmentChoice("", f"round robin{suffix}", strategy, needs_turn=True, candidates=ready)


def pick_turn(choice: AssignmentChoice, turn: int) -> AssignmentChoice:
    """The round-robin rep for the drawn ``turn`` (a counter advanced atomically per team)."""
    if not choice.needs_turn or not choice.candidates:
        return choice
    rep = choice.candidates[turn % len(choice.candidates)]
    return AssignmentChoice(
        rep, f"{choice.reason} (turn {turn})", choice.strategy, candidates=choice.candidates
    )


def duty_warnings(settings: Settings) -> list[str]:
    """What ``claimdesk check`` warns about assignment: teams with nobody on duty at any
    hour (every member away), strategies that can never pick anyone, and rules whose
    ``then.assign`` names a rep who is not a member of the rule's team (never chosen)."""
    warnings: list[str] = []
    for team in settings.teams:
        members = [settings.rep(r) for r in team.members]
        present = [r for r in members if r is not None and not r.away]
        if team.members and not present:
            warnings.append(
                f"team {team.name!r}: every member is away; nobody is on duty at any hour "
                "(its inquiries wait in the pool, nudges and escalations go to leads only)"
            )
        elif not team.members and team.assignment != "pool":
            warnings.append(
                f"team {team.name!r}: assignment {team.assignment!r} but no members; "
                "nobody is ever assigned"
            )
    for index, rule in enumerate(settings.rules):
        named = rule.then.assign
        if not named or named in STRATEGIES or settings.rep(named) is None:
            continue  # unknown reps and teams are config errors (schema)
        team_name = rule.then.team
        if not team_name:
            continue  # the target depends on the message: checked when it arrives
        try:
            team = settings.team(team_name)
        except KeyError:
            continue
        if named not in team.members:
            warnings.append(
                f"rules[{index}] {rule.name!r}: then.assign {named!r} is not a member of team "
                f"{team_name!r}; the inquiry goes to the team's {team.assignment} instead"
            )
    return warnings
