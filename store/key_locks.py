"""Several processes writing intake batches on PostgreSQL: lock the batch's keys first, in one order.

Two claimdesk processes may take the same webhook delivery at the same moment (a sender
retrying on another node, a load balancer replaying), and two batches may then hold rows
with the same unique keys: the inquiry's dedupe key, the ``(webhook, Idempotency-Key)``
record, a new contact's address. Without a lock the second batch reads "new", inserts,
waits at the unique index for the first batch's commit and fails: its whole transaction
is rolled back and written again, and when that second try meets yet another key still
in flight, every item is redone alone, one transaction each. Two batches holding two keys
in crossing orders deadlock until PostgreSQL's detector breaks the tie a second later.

``lock_keys`` takes one transaction-level advisory lock per key, in the order of the
locks' own ids, before the batch reads anything. A batch sharing a key with one in flight
waits for that commit (as the unique index made it wait), then reads the committed rows
and answers the shared item as the duplicate it is: no failure, no rewrite, no deadlock.
The locks live in the two-integer advisory key space under ``_KEY_CLASS``, apart from the
single-``bigint`` locks of migrations and outbox leases. Two keys hashing to one lock only
serialise two batches for a moment. SQLite has one writer at a time: nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text
from sqlmodel.ext.asyncio.session import AsyncSession

_KEY_CLASS = 0x1CDE  # the first int of every intake key lock (claimdesk's own key space)

# locks in ascending id order, each id once: any two batches take shared locks in one order
_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(:cls, h) FROM ("
    "SELECT DISTINCT hashtext(k) AS h FROM unnest(:keys) AS k ORDER BY h) AS ordered"
).bindparams(bindparam("keys", type_=ARRAY(Text())), cls=_KEY_CLASS)


async def lock_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    """Hold a transaction-level lock per key (PostgreSQL; nothing on SQLite) until commit."""
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return
    wanted = sorted(set(keys))
    if wanted:
        await (await session.connection()).execute(_LOCK_KEYS, {"keys": wanted})
