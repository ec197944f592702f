"""A validated webhook submission becomes an inquiry once, whatever its sender retries or replays.

Two dedupe rules, both decided before ``ingest`` and both safe under races:

- **Idempotency-Key**: the first sight of a key records the SHA-256 of its body
  (``webhook_key``, unique per webhook and key). The same key again with the
  same body answers the inquiry it made (202, ``duplicate: true``); with another
  body it is refused with 409, as payment APIs do: a key names one submission.
- **Identical body**: within ``DEDUPE_WINDOW`` of the first, an identical body
  (byte for byte) is the same inquiry whatever its key, so a captured request
  replayed with fresh keys makes nothing new. The window is far longer than the
  timestamped signature's 5 minutes, so a timestamped request can never be
  replayed into a second inquiry. After the window the same text is a new
  inquiry (a customer asking again next week).

The body rule rides on the inquiry's unique ``dedupe_key``:
``webhook:<name>:sha256:<hex>`` for the first, then ``...:after:<id>`` for the
one after an expired predecessor, so two concurrent deliveries always compute
the same key and meet at the unique index.

**Group commit.** Requests that arrive together are written by one writer
task in one transaction and each is answered only
after that commit: a 202 still means committed, and the commit, the write
lock and the wake-up of the worker and the live feed are paid once per batch.
Everything that needs no transaction (auth, parse, validation, normalization)
is done before a request joins the queue. Inside a batch the rules above hold
as they do across batches: items are written in arrival order and each one
reads what the earlier ones wrote (two identical bodies make one inquiry; a
key reused with another body is refused). An item none of whose keys or
address exists yet (the common case, read for the whole batch in a few
statements) is written without a savepoint: if it fails, the batch fails.
Any other item has its own savepoint, and the earlier items' pending rows are
flushed before it, outside it: if it is refused (409) or fails, only its own
writes roll back, and a failed one is redone alone on the
one-transaction-per-request path (which also meets a concurrent process at the
unique indexes). If the batch or its commit fails, every item is redone alone.
Nothing is acknowledged before its commit, nothing is written twice (the redo
dedupes on the same keys).

**Admission.** At most ``max_in_flight`` requests are between admission and
their answer; the rest of a burst waits at the door (a sleeping task, not work
in the event loop's ready queue), so a click arriving during a flood of
webhooks waits behind at most one batch's preparation instead of the whole
burst's parsing and language detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.context import AppContext
from bot.usecases.assignment import BatchDraws
from bot.usecases.ingest import (
    BatchHints,
    InboundMessage,
    PlannedInquiry,
    ingest,
    ingest_in,
    normalize_inbound,
    plan_new,
    write_planned,
)
from connectors.webhooks import InboundForm, IntakeReceipt, WebhookRejected
from routing.language import detect_language
from store import assignment as store_assignment
from store import inquiries as repo
from store import webhook_keys
from store.bulk import PendingRows
from store.engine import (
    SessionFactory,
    interactive_writer_waiting,
    transaction,
    writes_on_the_loop,
)
from store.key_locks import lock_keys
from store.models import WebhookKey
from store.notify import announce

log = logging.getLogger(__name__)

DEDUPE_WINDOW = timedelta(hours=24)

KEY_REUSED = (
    "Idempotency-Key was already used with a different body; use a new key for a new submission"
)


async def _check_key(ctx: AppContext, form: InboundForm) -> int | None:
    """The inquiry an earlier use of this key made, ``None`` if none yet; 409 on another body."""
    name, key = form.webhook, form.idempotency_key
    try:
        async with transaction(ctx.sessions) as session:
            row = await webhook_keys.find_key(session, name, key)
            if row is None:
                await webhook_keys.add_key(session, name, key, form.body_sha256, ctx.clock())
                # a key accepted before keys were recorded named its inquiry directly
                legacy = await repo.find_by_dedupe_key(session, f"webhook:{name}:key:{key}")
                if legacy is not None and legacy.id is not None:
                    await webhook_keys.link_inquiry(session, name, key, legacy.id)
                    return legacy.id
                return None
    except IntegrityError:  # the same key arrived concurrently: read what the winner wrote
        async with transaction(ctx.readers) as session:
            row = await webhook_keys.find_key(session, name, key)
        if row is None:
            raise
    if row.body_sha256 != form.body_sha256:
        raise WebhookRejected(409, KEY_REUSED)
    return row.inquiry_id


async def _body_dedupe_key(ctx: AppContext, form: InboundForm) -> str:
    """The inquiry dedupe key for this body: the first one's, or the next after an expired one."""
    async with transaction(ctx.readers) as session:
        return await _body_dedupe_key_in(ctx, session, form)


async def _body_dedupe_key_in(ctx: AppContext, session: Any, form: InboundForm) -> str:
    base = f"webhook:{form.webhook}:sha256:{form.body_sha256}"
    key = base
    since = ctx.clock() - DEDUPE_WINDOW
    for _ in range(1000):  # one step per earlier identical body outside the window
        existing = await repo.find_by_dedupe_key(session, key)
        if existing is None or existing.id is None or existing.received_at >= since:
            return key
        key = f"{base}:after:{existing.id}"
    return key


def _inbound(ctx: AppContext, form: InboundForm, dedupe_key: str) -> InboundMessage:
    hook = ctx.settings.webhook(form.webhook)
    return InboundMessage(
        source=form.webhook,
        source_kind="webhook",
        dedupe_key=dedupe_key,
        email=form.email,
        name=form.name,
        company=form.company,
        country=form.country,
        phone=form.phone,
        language=form.language,
        category=form.category,
        subject=form.subject,
        text=form.message,
        team=hook.team if hook else "",
        mailbox=hook.mailbox if hook else "",
        fields=form.fields,
    )


async def intake_webhook(ctx: AppContext, form: InboundForm) -> IntakeReceipt:
    """Store ``form`` once (raises ``WebhookRejected`` 409 for a reused key), group-committed."""
    return await intake_writer(ctx).submit(ctx, form)


async def intake_webhook_alone(ctx: AppContext, form: InboundForm) -> IntakeReceipt:
    """Store ``form`` once in transactions of its own (the path a failed batch item is redone on)."""
    if form.body_sha256:
        if form.idempotency_key:
            known = await _check_key(ctx, form)
            if known is not None:
                ctx.metrics.duplicates.labels("webhook").inc()
                return IntakeReceipt(known, duplicate=True)
        dedupe_key = await _body_dedupe_key(ctx, form)
    else:  # a programmatic caller names its own key
        dedupe_key = form.dedupe_key
    result = await ingest(ctx, _inbound(ctx, form, dedupe_key))
    if form.body_sha256 and form.idempotency_key:
        async with transaction(ctx.sessions) as session:
            await webhook_keys.link_inquiry(
                session, form.webhook, form.idempotency_key, result.inquiry_id
            )
    return IntakeReceipt(result.inquiry_id, result.duplicate)


class _BatchFacts:
    """What the rows looked like when the batch began, read in a few statements for all of
    its items, and what its earlier items took. An item none of whose keys (Idempotency-Key,
    body dedupe key, legacy key) exists nor was taken earlier in the batch is new: it skips
    the lookups one by one; any other item reads them one by one as before."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()  # (webhook, Idempotency-Key) recorded
        self.dedupe: set[str] = set()  # inquiry dedupe keys that exist
        self.addresses: set[str] = set()  # contact addresses that exist
        self.verdicts: dict[str, str] = {}
        self.taken: set[str] = set()  # keys and addresses of earlier items of the batch
        self.pending = PendingRows()  # rows of the new items, inserted in bulk before the commit

    @staticmethod
    def names(form: InboundForm, msg: InboundMessage) -> tuple[list[str], list[str], str]:
        """(dedupe keys, Idempotency-Key names, address) an item may meet earlier rows on."""
        if form.body_sha256:
            dedupe = [f"webhook:{form.webhook}:sha256:{form.body_sha256}"]
            if form.idempotency_key:
                dedupe.append(f"webhook:{form.webhook}:key:{form.idempotency_key}")
        else:
            dedupe = [form.dedupe_key]
        keyed = [form.idempotency_key] if form.body_sha256 and form.idempotency_key else []
        return dedupe, keyed, msg.email.lower()

    @classmethod
    async def read(cls, session: Any, items: list[_Item]) -> _BatchFacts:
        # another process's batch holding one of these keys commits before this one reads
        await lock_keys(session, cls.lock_names(items))
        facts = cls()
        dedupe: list[str] = []
        keys: dict[str, list[str]] = {}
        addresses: list[str] = []
        for item in items:
            d, k, address = cls.names(item.form, item.msg)
            dedupe += d
            keys.setdefault(item.form.webhook, []).extend(k)
            addresses += [address, item.msg.from_address]
        facts.dedupe = await repo.existing_dedupe_keys(session, dedupe)
        for webhook, names in keys.items():
            found = await webhook_keys.existing_keys(session, webhook, names)
            facts.keys.update((webhook, key) for key in found)
        facts.addresses = await repo.known_addresses(session, [a for a in addresses[::2] if a])
        facts.verdicts = await store_assignment.sender_verdicts(session, addresses)
        return facts

    @classmethod
    def lock_names(cls, items: list[_Item]) -> list[str]:
        """Every unique key the batch's rows may meet another process's rows on."""
        names: list[str] = []
        for item in items:
            dedupe, keyed, address = cls.names(item.form, item.msg)
            names += ["d:" + d for d in dedupe]
            names += [f"k:{item.form.webhook}:{k}" for k in keyed]
            if address:
                names.append("a:" + address)
        return names

    def hints(self, form: InboundForm, msg: InboundMessage) -> BatchHints | None:
        """``BatchHints`` for a new item, ``None`` when it must be read one by one."""
        dedupe, keyed, address = self.names(form, msg)
        if any(d in self.dedupe or "d:" + d in self.taken for d in dedupe):
            return None
        if any(
            (form.webhook, k) in self.keys or f"k:{form.webhook}:{k}" in self.taken for k in keyed
        ):
            return None
        new_address = (
            bool(address) and address not in self.addresses and "a:" + address not in self.taken
        )
        return BatchHints(
            unseen=True, new_address=new_address, verdicts=self.verdicts, pending=self.pending
        )

    def record_key(self, ctx: AppContext, form: InboundForm, inquiry_id: int) -> None:
        """A new item's Idempotency-Key record, inserted with the batch's pending rows."""
        if form.body_sha256 and form.idempotency_key:
            self.pending.add_values(
                WebhookKey,
                webhook=form.webhook,
                key=form.idempotency_key,
                body_sha256=form.body_sha256,
                created_at=ctx.clock(),
                inquiry_id=inquiry_id,
            )

    def take(self, form: InboundForm, msg: InboundMessage) -> None:
        """Mark the item's keys and address taken (later items with them read one by one)."""
        dedupe, keyed, address = self.names(form, msg)
        self.taken.update("d:" + d for d in dedupe)
        self.taken.update(f"k:{form.webhook}:{k}" for k in keyed)
        if address:
            self.taken.add("a:" + address)


def _first_of_body(form: InboundForm, msg: InboundMessage) -> InboundMessage:
    """``msg`` keyed by its body's hash: the dedupe key of the first request with that body."""
    if not form.body_sha256:
        return msg
    return dataclasses.replace(msg, dedupe_key=f"webhook:{form.webhook}:sha256:{form.body_sha256}")


async def _intake_in(
    ctx: AppContext,
    session: Any,
    form: InboundForm,
    msg: InboundMessage,
    facts: _BatchFacts | None = None,
    hints: BatchHints | None = None,
) -> IntakeReceipt:
    """One batch item inside the batch transaction: the rules of ``intake_webhook_alone``,
    reading what the earlier items of the batch wrote. ``hints`` (from ``facts``) says
    it is new; without them the caller has flushed the earlier items' pending rows."""
    name, key = form.webhook, form.idempotency_key
    keyed = bool(form.body_sha256 and key)
    if hints is not None:  # nothing it could meet exists: its keys are the first ones
        result = await ingest_in(ctx, session, _first_of_body(form, msg), hints)
        if facts is not None:
            facts.record_key(ctx, form, result.inquiry_id)
        return IntakeReceipt(result.inquiry_id, result.duplicate)
    row = await webhook_keys.find_key(session, name, key) if keyed else None
    if row is not None:
        if row.body_sha256 != form.body_sha256:
            raise WebhookRejected(409, KEY_REUSED)
        if row.inquiry_id is not None:
            ctx.metrics.duplicates.labels("webhook").inc()
            return IntakeReceipt(row.inquiry_id, duplicate=True)
    elif keyed:
        legacy = await repo.find_by_dedupe_key(session, f"webhook:{name}:key:{key}")
        if legacy is not None and legacy.id is not None:
            await webhook_keys.add_key(session, name, key, form.body_sha256, ctx.clock())
            await webhook_keys.link_inquiry(session, name, key, legacy.id)
            ctx.metrics.duplicates.labels("webhook").inc()
            return IntakeReceipt(legacy.id, duplicate=True)
    if form.body_sha256:
        msg = dataclasses.replace(msg, dedupe_key=await _body_dedupe_key_in(ctx, session, form))
    result = await ingest_in(ctx, session, msg)
    if keyed:
        if row is None:
            await webhook_keys.record_key(
                session, name, key, form.body_sha256, ctx.clock(), result.inquiry_id
            )
        else:  # recorded by a request that did not get to link it (crash, or a legacy path)
            await webhook_keys.link_inquiry(session, name, key, result.inquiry_id)
    return IntakeReceipt(result.inquiry_id, result.duplicate)


@dataclasses.dataclass
class _Item:
    ctx: AppContext
    form: InboundForm
    msg: InboundMessage
    done: asyncio.Future[IntakeReceipt]
    receipt: IntakeReceipt | None = None


class IntakeWriter:
    """Group commit for webhook intake: one writer task, one transaction per batch.

    ``submit`` queues a prepared request and waits for its receipt, which is set
    only after the batch's commit. The writer task runs while there is work and
    ends when the queue is empty (the next ``submit`` starts it again), so it
    needs no start or stop. A batch is at most ``max_batch`` requests and stops
    taking more once it has held the write lock for ``max_hold`` seconds, so an
    interactive writer waiting behind it waits for little more than that.
    ``max_in_flight`` caps the requests admitted and not yet answered.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        max_batch: int = 64,
        max_hold: float = 0.04,
        breather: float = 0.004,
        linger: float = 0.002,
        max_in_flight: int = 64,
    ) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self.max_hold = max_hold
        self.breather = breather
        self.linger = linger
        self._queue: deque[_Item] = deque()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # committed batches, for tests and the bench
        self.max_in_flight = max_in_flight
        self._admission: asyncio.Semaphore | None = None  # made in the running loop
        self.in_flight = 0  # admitted, not yet answered
        self.peak_in_flight = 0  # for tests and the bench

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the ``max_in_flight`` places. The webhook route takes it before it
        reads, authenticates and parses the body, so a burst waits at the door as sleeping
        tasks and a click arriving during it waits behind at most ``max_in_flight`` of
        them, not the whole burst's parsing. Re-entrant within one task."""
        if _admitted.get():
            yield
            return
        if self._admission is None:
            self._admission = asyncio.Semaphore(self.max_in_flight)
        async with self._admission:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            token = _admitted.set(True)
            try:
                yield
            finally:
                _admitted.reset(token)
                self.in_flight -= 1

    async def submit(self, ctx: AppContext, form: InboundForm) -> IntakeReceipt:
        async with self.admitted():
            msg = _prepare(_inbound(ctx, form, form.dedupe_key))
            item = _Item(ctx, form, msg, asyncio.get_running_loop().create_future())
            self._queue.append(item)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="webhook-intake-writer")
            # the writer answers every item it took, even when this request is cancelled
            return await asyncio.shield(item.done)

    async def _run(self) -> None:
        if self.linger:
            await asyncio.sleep(self.linger)  # let the requests arriving together join
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            try:
                try:
                    await self._write(batch)
                except IntegrityError:
                    # A key another writer took meanwhile (another process: two deliveries
                    # of one request at once). Once more in a new transaction, whose read
                    # sees that key: its item is then answered as the duplicate it is, and
                    # the rest of the batch is not redone one by one for it.
                    batch = [item for item in batch if not item.done.done()]
                    for item in batch:
                        item.receipt = None
                    log.info("intake batch met a key taken meanwhile; writing it again")
                    if batch:
                        await self._write(batch)
            except Exception:  # the commit failed: redo each one alone
                log.warning(
                    "intake batch failed; redoing its %d items alone", len(batch), exc_info=True
                )
                for item in batch:
                    item.receipt = None
            for item in batch:
                if item.receipt is not None and not item.done.done():
                    item.done.set_result(item.receipt)
            redo = [item for item in batch if not item.done.done()]
            if redo:
                await asyncio.gather(*(self._alone(item) for item in redo))

    async def _write(self, batch: list[_Item]) -> None:
        """Write ``batch`` in one transaction; items left out (over time) go back to the queue."""
        written = 0
        async with transaction(self.sessions, bulk=True) as session:
            started = time.monotonic()
            facts = await _BatchFacts.read(session, batch)
            planned: list[tuple[_Item, PlannedInquiry]] = []  # written together, in order
            ctx = batch[0].ctx  # one writer per session factory: one service's items
            draws = BatchDraws(ctx, session)

            async def write_planned_items() -> None:
                if not planned:
                    return
                await write_planned(ctx, session, [p for _item, p in planned], draws)
                for item, plan in planned:
                    item.receipt = IntakeReceipt(plan.inquiry_id, duplicate=False)
                    facts.record_key(item.ctx, item.form, plan.inquiry_id)
                planned.clear()

            breather = started
            # PostgreSQL's statements wait off the loop: no pause needed, the rows of the
            # whole batch go in together
            pauses = writes_on_the_loop(self.sessions)
            for item in batch:
                now = time.monotonic()
                if written and now - started > self.max_hold:
                    break
                if pauses and written and now - breather > self.breather:
                    # Let the loop run: the batch's statements run on the loop's thread
                    # (SQLite), so without a pause the loop would stall for the whole
                    # batch. The items planned so far are written first (their rows in
                    # one statement per table, as at the end). A click that reaches the
                    # write lock meanwhile goes next: the batch ends here.
                    await write_planned_items()
                    await asyncio.sleep(0)
                    breather = time.monotonic()
                    if interactive_writer_waiting(self.sessions):
                        break
                written += 1
                hints = facts.hints(item.form, item.msg)
                plan = (
                    await plan_new(ctx, _first_of_body(item.form, item.msg), hints, draws)
                    if hints is not None and item.ctx is ctx
                    else None
                )
                if plan is not None:
                    # new, nothing to look up: its rows go in with the others', its rep drawn
                    planned.append((item, plan))
                    facts.take(item.form, item.msg)
                    continue
                await write_planned_items()  # in order: before any item written alone
                draws.forget()  # it reads, draws and assigns from the store itself
                if hints is not None:
                    # new: nothing it could meet exists, so no savepoint (two statements
                    # and their bookkeeping per item). A failure here, our bug or the
                    # database's, fails the batch, whose items are then redone one by one.
                    item.receipt = await _intake_in(
                        item.ctx, session, item.form, item.msg, facts, hints
                    )
                    facts.take(item.form, item.msg)
                    continue
                if facts.pending:
                    # it reads what the earlier items wrote. Flushed here, outside its
                    # savepoint: a refusal or failure of this item must not roll back
                    # the earlier items' rows (a lost key record let a second body in).
                    await facts.pending.flush(session)
                mark = len(facts.pending)
                try:
                    async with session.begin_nested():
                        item.receipt = await _intake_in(
                            item.ctx, session, item.form, item.msg, facts, hints
                        )
                except WebhookRejected as exc:
                    del facts.pending.rows[mark:]
                    item.done.set_exception(
                        exc
                    )  # rolled back to its savepoint; refusals need no commit
                except Exception:
                    del facts.pending.rows[mark:]  # rolled back with its savepoint
                    item.receipt = None
                    log.warning("intake batch item failed; redone alone", exc_info=True)
                finally:
                    facts.take(item.form, item.msg)
            await write_planned_items()
            await facts.pending.flush(session)
            await announce(session)  # other processes' workers and feeds: look now
        for item in reversed(batch[written:]):
            self._queue.appendleft(item)
        del batch[written:]
        self.batches += 1
        for ctx in {id(item.ctx): item.ctx for item in batch}.values():
            ctx.changed.fire()
            ctx.outbox_ready.fire()

    async def _alone(self, item: _Item) -> None:
        try:
            receipt = await intake_webhook_alone(item.ctx, item.form)
        except BaseException as exc:
            if not item.done.done():
                item.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not item.done.done():
                item.done.set_result(receipt)


def _prepare(msg: InboundMessage) -> InboundMessage:
    """Normalized, language detected: the work that needs no transaction, done before it."""
    msg = normalize_inbound(msg)
    if not msg.language:
        try:
            detected = detect_language(f"{msg.subject}\n{msg.text}")
            msg = dataclasses.replace(msg, detected_language=detected)
        except Exception:  # our bug must not lose the inquiry: ingest stores it undetected
            log.exception("language detection failed", extra={"source": msg.source})
    return msg


#: Set while a task holds its place in an ``IntakeWriter`` (``admitted``).
_admitted: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "claimdesk_intake_admitted", default=False
)

#: One writer per database (its write session factory): group commit is per database.
_writers: weakref.WeakKeyDictionary[SessionFactory, IntakeWriter] = weakref.WeakKeyDictionary()


def intake_writer(ctx: AppContext) -> IntakeWriter:
    """The group-committing writer of ``ctx``'s database."""
    writer = _writers.get(ctx.sessions)
    if writer is None:
        writer = _writers[ctx.sessions] = IntakeWriter(ctx.sessions)
    return writer
