"""Who the clock addresses: mentions per platform, reps on duty, stand-ins while away, the ladder.

The ladder has two rungs (1: the leads, 2: the managers). A rung with nobody in
it (no rep configured, or only unknown ids) falls through: its step goes to
the next rung that has someone, at that step's time. So a team without leads
escalates to its managers at the first escalation step, and the second step
is not planned (nobody is left above).

Reachable on chat means: the team has a destination on a platform where the
rep has an id (``bot.usecases.notices.reachable_on_chat``). Anyone else is told by email.
"""

from __future__ import annotations

from bot.context import AppContext
from bot.usecases.notices import chat_user
from config.schema import RepSettings, TeamSettings


def platform_user(ctx: AppContext, platform: str, rep: RepSettings) -> str:
    """The rep's user id on ``platform`` ("" when unknown there); see ``bot.usecases.notices.chat_user``."""
    return chat_user(ctx, platform, rep)


def mention(ctx: AppContext, platform: str, rep: RepSettings) -> str:
    """A live mention the platform itself writes (``ChatPlatform.mention``) where the rep's id
    is known there, else ``@Name``."""
    if platform in ctx.platforms:
        return ctx.mention(platform, rep.id)
    user = platform_user(ctx, platform, rep)
    if user and user != rep.id:  # a channel standing in for a platform: its plain form
        return f"<@{user}>" if platform in ("slack", "wecom") else f"@{user}"
    return f"@{rep.name}"


def stand_in(ctx: AppContext, rep_id: str, away: frozenset[str]) -> str:
    """The rep, or their backup while they are away (once; no chains).

    ``away``: everyone away now (config or own flag, see ``bot.usecases.presence``).
    """
    rep = ctx.settings.rep(rep_id)
    if rep is not None and rep.id in away and rep.backup:
        backup = ctx.settings.rep(rep.backup)
        if backup is not None and backup.id not in away:
            return backup.id
    return rep_id


def on_duty(ctx: AppContext, team: TeamSettings, away: frozenset[str]) -> list[RepSettings]:
    """The team's members who are not away (those a nudge mentions)."""
    reps = [ctx.settings.rep(r) for r in team.members]
    return [r for r in reps if r is not None and r.id not in away]


def rungs(ctx: AppContext, team: TeamSettings, away: frozenset[str]) -> list[list[str]]:
    """The ladder's rungs that have someone in them, lowest first, stand-ins applied."""
    out: list[list[str]] = []
    for people in (team.leads, team.managers):
        known = [r for r in people if ctx.settings.rep(r) is not None]
        rung = list(dict.fromkeys(stand_in(ctx, r, away) for r in known))
        if rung:
            out.append(rung)
    return out


def ladder(ctx: AppContext, team: TeamSettings, level: int, away: frozenset[str]) -> list[str]:
    """Who the escalation step ``level`` goes to: the ``level``-th rung with someone in it
    (1: the leads, or the managers when there are no leads), ``[]`` past the top."""
    found = rungs(ctx, team, away)
    return found[level - 1] if 1 <= level <= len(found) else []


def targets(ctx: AppContext, team: TeamSettings) -> list[tuple[str, str]]:
    """Every (platform, destination) where the team's cards are posted."""
    return [
        (name, dest)
        for name, channel in ctx.channels.items()
        for dest in channel.destinations(team)
    ]
