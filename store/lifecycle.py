"""The status lifecycle: which manual moves are allowed from each status.

``new -> claimed -> replied -> waiting -> follow_up -> won | lost``, plus
``spam`` and ``closed``; ``release`` returns a claimed item to ``new``; a customer
answer moves it back to ``claimed``. Claim, release and reply have their own
operations; this table governs the status a person picks from the card.
"""

from __future__ import annotations

from store.models import Status

OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.NEW, Status.CLAIMED, Status.REPLIED, Status.WAITING, Status.FOLLOW_UP}
)
FINAL_STATUSES: frozenset[Status] = frozenset({Status.WON, Status.LOST, Status.SPAM, Status.CLOSED})

#: Statuses a person may set by hand, by current status.
MANUAL_MOVES: dict[Status, tuple[Status, ...]] = {
    Status.NEW: (Status.SPAM, Status.CLOSED),
    Status.CLAIMED: (
        Status.WAITING,
        Status.FOLLOW_UP,
        Status.WON,
        Status.LOST,
        Status.SPAM,
        Status.CLOSED,
    ),
    Status.REPLIED: (Status.WAITING, Status.FOLLOW_UP, Status.WON, Status.LOST, Status.CLOSED),
    Status.WAITING: (Status.FOLLOW_UP, Status.WON, Status.LOST, Status.CLOSED),
    Status.FOLLOW_UP: (Status.WAITING, Status.WON, Status.LOST, Status.CLOSED),
    Status.WON: (Status.CLAIMED,),
    Status.LOST: (Status.CLAIMED,),
    Status.SPAM: (Status.NEW,),
    Status.CLOSED: (Status.CLAIMED,),
}

#: Statuses that need a reason from the person who sets them.
NEEDS_REASON: frozenset[Status] = frozenset({Status.WON, Status.LOST})

#: Statuses from which a reply may be sent (a reply to a ``new`` item claims it first).
REPLYABLE: frozenset[Status] = frozenset(
    {Status.NEW, Status.CLAIMED, Status.REPLIED, Status.WAITING, Status.FOLLOW_UP}
)


def allowed_moves(current: str) -> tuple[Status, ...]:
    return MANUAL_MOVES.get(Status(current), ())


def is_open(status: str) -> bool:
    return Status(status) in OPEN_STATUSES
