"""The clock: nudges, the escalation ladder, follow-ups, snooze wake-ups, reps away, digests.

A tick asks the database what is due: one query on the indexed
``inquiry.next_due_at <= now``. The due inquiries are handled in chunks
(``ClockSettings.chunk``: 50 on SQLite, 250 on PostgreSQL), one short
transaction per chunk: the chunk is re-read under row locks (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so two processes split the work instead of queueing on
it; SQLite serializes writers anyway) and re-checked (still due?), then
:func:`bot.usecases.sla.plan` says which steps are due for each. Each step first inserts a ``JobRun`` row under
its deterministic key (``nudge:{inquiry}:{phase}:{n}``,
``escalate:{inquiry}:{phase}:claim:1`` ...), all keys of the chunk in one
``INSERT ... ON CONFLICT DO NOTHING RETURNING key``; only the transaction that
inserted a key acts on its step. The steps' Events and outbox rows (idempotency
key derived from the step key) are inserted in bulk in that same transaction,
and each inquiry's ``next_due_at`` moves on to its next step with a
compare-and-set on the inquiry's version. So with any number of claimdesk
processes on one PostgreSQL each step happens exactly once, and a crash
between steps loses nothing: the step is still due at the next tick.

When anything in a chunk fails (a lost compare-and-set, a bug, a dropped
connection), the chunk's transaction rolls back as a whole and its inquiries
are handled again one per transaction, so one bad inquiry never holds up the
others and nothing of a failed inquiry is half done.

A process that was stopped does the due work when it comes back: each missed
ladder step once (repeated nudges coalesce into the newest), marked late in
the message and in the Event when it is more than ``late_after`` past due.

The trigger is a plain asyncio loop, not APScheduler: the issue wants the
scheduler to do nothing but trigger, and the database to decide. A loop that
calls :meth:`Scheduler.tick` every ``interval_seconds`` does exactly that, reads
time only from the injected clock (APScheduler's triggers read the wall clock,
which tests could not move), and adds no dependency. Daily digests are not
cron jobs either: each tick computes the team's latest digest slot in its time
zone and runs it once under its ``JobRun`` key (see ``bot.usecases.digest``).

Nothing is sent outside the team's business hours: each step's instant is
moved to the next opening (``bot.usecases.sla.when_open``).

The package: ``scheduler`` (the loop and the tick, chunk by chunk),
``context`` (:class:`StepContext`, one due step and the ways it acts),
``steps`` (the handlers by kind), ``follow_ups`` (the follow-up use case and
its step), ``hand_over`` (reps away), ``people`` (who is mentioned or DMed),
``writes`` (bulk Events and outbox rows, compare-and-set) and
``escalation_card`` (the card a clock DM carries). The job claims are store
operations: ``store.job_runs``.
"""

from bot.runtime.clock.escalation_card import direct_card
from bot.runtime.clock.people import mention, on_duty, platform_user
from bot.runtime.clock.scheduler import ClockSettings, Scheduler, TickReport
from bot.usecases.follow_ups import apply_follow_up, set_follow_up

__all__ = [
    "ClockSettings",
    "Scheduler",
    "TickReport",
    "apply_follow_up",
    "direct_card",
    "mention",
    "on_duty",
    "platform_user",
    "set_follow_up",
]
