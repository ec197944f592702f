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
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from bot.context import AppContext
from bot.usecases.ingest import InboundMessage, ingest
from connectors.webhooks import InboundForm, IntakeReceipt, WebhookRejected
from store import inquiries as repo
from store import webhook_keys
from store.engine import transaction

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
    base = f"webhook:{form.webhook}:sha256:{form.body_sha256}"
    key = base
    since = ctx.clock() - DEDUPE_WINDOW
    async with transaction(ctx.readers) as session:
        for _ in range(1000):  # one step per earlier identical body outside the window
            existing = await repo.find_by_dedupe_key(session, key)
            if existing is None or existing.id is None or existing.received_at >= since:
                return key
            key = f"{base}:after:{existing.id}"
    return key


async def intake_webhook(ctx: AppContext, form: InboundForm) -> IntakeReceipt:
    """Store ``form`` once (raises ``WebhookRejected`` 409 for a reused key)."""
    hook = ctx.settings.webhook(form.webhook)
    if form.body_sha256:
        if form.idempotency_key:
            known = await _check_key(ctx, form)
            if known is not None:
                ctx.metrics.duplicates.labels("webhook").inc()
                return IntakeReceipt(known, duplicate=True)
        dedupe_key = await _body_dedupe_key(ctx, form)
    else:  # a programmatic caller names its own key
        dedupe_key = form.dedupe_key
    result = await ingest(
        ctx,
        InboundMessage(
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
        ),
    )
    if form.body_sha256 and form.idempotency_key:
        async with transaction(ctx.sessions) as session:
            await webhook_keys.link_inquiry(
                session, form.webhook, form.idempotency_key, result.inquiry_id
            )
    return IntakeReceipt(result.inquiry_id, result.duplicate)
