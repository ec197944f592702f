"""Group commit (issue 14): concurrent webhooks written in shared transactions store exactly
the right rows, on SQLite and on a real PostgreSQL; the write lock serves clicks first."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.interfaces.webhook_intake import intake_writer
from config.loading import settings_from_mapping
from connectors.webhooks import sign_body
from store.engine import WriteLock, transaction
from store.models import (
    AssignmentTurn,
    ContactEmail,
    Event,
    Inquiry,
    Message,
    Outbox,
    WebhookKey,
)
from tests.conftest import WEBHOOK_SECRET, base_config
from tests.test_webhook_hardening import settings_with_form_hook


def _body(i: int) -> bytes:
    return json.dumps(
        {
            "email": f"buyer{i}@importer.example",
            "name": f"Buyer {i}",
            "subject": f"Quotation {i}: LED panels",
            "message": f"Please quote {100 + i} pcs of 600x600 LED panels.",
        }
    ).encode()


async def _post(client: Any, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, body),
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    response = await client.post("/webhooks/website", data=body, headers=headers)
    return response.status, await response.json()


async def _count(service: Any, model: Any) -> int:
    async with transaction(service.ctx.readers) as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def test_concurrent_webhooks_store_exactly_the_right_rows(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    service = await service_factory(settings_with_form_hook(smtp.port, db_url))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    batches_before = writer.batches
    # 40 distinct bodies with their own keys; each sent twice at once with the same key,
    # bodies 0-9 once more without a key (body dedupe), and keys k0-k4 reused with
    # another body (409): all 95 requests in flight together.
    requests: list[tuple[str, bytes, str | None]] = []
    for i in range(40):
        requests += [(f"a{i}", _body(i), f"k{i}"), (f"b{i}", _body(i), f"k{i}")]
    requests += [(f"c{i}", _body(i), None) for i in range(10)]
    requests += [(f"r{i}", _body(1000 + i), f"k{i}") for i in range(5)]
    answers = await asyncio.gather(*(_post(client, body, key) for _, body, key in requests))
    by_name = {name: answer for (name, _, _), answer in zip(requests, answers, strict=True)}

    for i in range(40):
        (status_a, a), (status_b, b) = by_name[f"a{i}"], by_name[f"b{i}"]
        assert (status_a, status_b) == (202, 202)
        assert a["inquiry"] == b["inquiry"]
        assert [a["duplicate"], b["duplicate"]].count(True) == 1
    for i in range(10):
        status, c = by_name[f"c{i}"]
        assert status == 202
        assert c["inquiry"] == by_name[f"a{i}"][1]["inquiry"]
        assert c["duplicate"] is True
    for i in range(5):
        assert by_name[f"r{i}"][0] == 409
    assert len({by_name[f"a{i}"][1]["inquiry"] for i in range(40)}) == 40

    assert await _count(service, Inquiry) == 40
    assert await _count(service, Message) == 40
    assert await _count(service, WebhookKey) == 40
    async with transaction(service.ctx.readers) as session:
        keys = (await session.exec(select(WebhookKey))).all()
    assert all(key.inquiry_id is not None for key in keys)
    assert {key.key: key.inquiry_id for key in keys} == {
        f"k{i}": by_name[f"a{i}"][1]["inquiry"] for i in range(40)
    }
    # one card post per inquiry and channel, none twice
    async with transaction(service.ctx.readers) as session:
        outbox = (await session.exec(select(Outbox.key))).all()
    assert len(outbox) == len(set(outbox))
    assert writer.batches - batches_before < len(requests)  # they did share transactions


async def test_a_refused_item_keeps_what_the_earlier_items_of_its_batch_wrote(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """One batch: a new body with key K, then two other bodies with K. The second is refused
    (409) inside its savepoint; that must not roll back the first one's key record and new
    address, else the third is let in as a second inquiry (CI saw two 202s in a race)."""
    service = await service_factory(settings_with_form_hook(smtp.port, db_url))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    # all three join one batch, however slow the machine: the writer waits a full second
    # before it takes its first batch, and a batch is not cut short by its time budget
    # (CI once split it in two under load, which made the test fail without the defect)
    writer.linger = 1.0
    writer.max_hold = 60.0
    batches_before = writer.batches
    first = asyncio.ensure_future(_post(client, _body(1), "K"))
    await asyncio.sleep(0.02)  # the first is queued first
    others = [asyncio.ensure_future(_post(client, _body(i), "K")) for i in (2, 3)]
    answers = await asyncio.gather(first, *others)
    assert writer.batches - batches_before == 1
    assert [status for status, _ in answers] == [202, 409, 409]
    assert await _count(service, Inquiry) == 1
    assert await _count(service, WebhookKey) == 1
    async with transaction(service.ctx.readers) as session:
        addresses = (await session.exec(select(ContactEmail.address))).all()
    assert "buyer1@importer.example" in addresses


def _settings_assigning(smtp_port: int, db_url: str, assignment: str, **teams: Any) -> Any:
    """``settings_with_form_hook`` with every team assigning by ``assignment``, and the
    fields given per team name (``sales={"members": [...]}``) changed too."""
    settings = settings_with_form_hook(smtp_port, db_url)
    changed = [
        t.model_copy(update={"assignment": assignment, **teams.get(t.name, {})})
        for t in settings.teams
    ]
    return settings.model_copy(update={"teams": changed})


@pytest.mark.parametrize(
    ("assignment", "path"),
    [("pool", "planned"), ("round_robin", "planned"), ("round_robin", "one_by_one")],
)
async def test_a_failing_new_item_loses_nothing(
    db_url: str,
    smtp: Any,
    service_factory: Any,
    client_factory: Any,
    monkeypatch: Any,
    assignment: str,
    path: str,
) -> None:
    """A new item (written without a savepoint) whose write raises fails its batch: nothing
    of the batch is committed, every item is redone alone, each stored once. New items are
    written together (``write_planned``, round-robin draws included); those the planner
    leaves (an out-of-hours acknowledgement, a flag) one by one (``_intake_in``). (An item
    that reads earlier rows has a savepoint: see the refusal test above.)"""
    import bot.interfaces.webhook_intake as intake

    service = await service_factory(_settings_assigning(smtp.port, db_url, assignment))
    client = await client_factory(service, background=False)
    failed: list[str] = []
    if path == "planned":
        real_planned = intake.write_planned

        async def flaky_planned(ctx: Any, session: Any, plans: list[Any], draws: Any) -> None:
            names = [p.msg.name for p in plans]
            if "Buyer 3" in names and not failed:
                failed.append("Buyer 3")
                await real_planned(ctx, session, plans, draws)  # its rows are in, then it fails
                raise RuntimeError("simulated failure inside the batch")
            await real_planned(ctx, session, plans, draws)

        monkeypatch.setattr(intake, "write_planned", flaky_planned)
    else:
        real = intake._intake_in

        async def no_plan(*_: Any) -> None:
            return None  # as for an item with an acknowledgement due: one by one

        async def flaky(ctx: Any, session: Any, form: Any, msg: Any, *rest: Any) -> Any:
            if "Buyer 3" in form.name and not failed:
                failed.append(form.name)
                await session.exec(select(func.count()).select_from(Inquiry))
                raise RuntimeError("simulated failure inside the batch")
            return await real(ctx, session, form, msg, *rest)

        monkeypatch.setattr(intake, "plan_new", no_plan)
        monkeypatch.setattr(intake, "_intake_in", flaky)
    answers = await asyncio.gather(*(_post(client, _body(i), f"f{i}") for i in range(8)))
    assert failed == ["Buyer 3"]
    assert [status for status, _ in answers] == [202] * 8
    assert len({a["inquiry"] for _, a in answers}) == 8
    assert await _count(service, Inquiry) == 8
    assert await _count(service, WebhookKey) == 8
    if assignment == "round_robin":  # the failed batch's draws were rolled back with it
        async with transaction(service.ctx.readers) as session:
            turn = await session.get(AssignmentTurn, "sales")
        assert turn is not None and turn.n == 8


async def test_a_batch_whose_bulk_rows_fail_is_redone_item_by_item(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any, monkeypatch: Any
) -> None:
    """The rows a batch inserts in bulk before its commit (Idempotency-Keys, new contacts'
    addresses) failing fails the whole batch: nothing of it is committed, every item is
    redone alone, each stored once and answered after its own commit."""
    import store.bulk as bulk

    service = await service_factory(settings_with_form_hook(smtp.port, db_url))
    client = await client_factory(service, background=False)
    real = bulk.insert_rows
    failed: list[int] = []

    async def failing_once(session: Any, rows: list[Any]) -> None:
        if rows and not failed:
            failed.append(len(rows))
            raise RuntimeError("simulated failure of the batch's bulk insert")
        await real(session, rows)

    monkeypatch.setattr(bulk, "insert_rows", failing_once)
    answers = await asyncio.gather(*(_post(client, _body(i), f"g{i}") for i in range(12)))
    assert failed
    assert [status for status, _ in answers] == [202] * 12
    assert len({a["inquiry"] for _, a in answers}) == 12
    assert not any(a["duplicate"] for _, a in answers)
    assert await _count(service, Inquiry) == 12
    assert await _count(service, Message) == 12
    assert await _count(service, WebhookKey) == 12


async def test_a_batch_pauses_for_the_loop_and_lets_a_waiting_click_in(
    sqlite_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """SQLite runs a batch's statements on the loop's thread: without a pause the loop
    stalled for the whole batch (25-85 ms per batch measured during a 1,000-webhook burst),
    and a click waited for it. The batch now writes what it planned and pauses every
    ``breather`` seconds; a click that reaches the write lock during a pause ends the
    batch there: it commits what it wrote, the click goes next, the rest follows."""
    import bot.interfaces.webhook_intake as intake

    service = await service_factory(settings_with_form_hook(smtp.port, sqlite_url))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    writer.linger, writer.max_hold, writer.breather = 0.3, 60.0, 0.0  # pause after each item
    order: list[str] = []
    real_planned = intake.write_planned
    clicked: list[asyncio.Task[None]] = []

    async def click() -> None:  # an interactive writer, as a claim is
        async with transaction(service.ctx.sessions) as session:
            await session.exec(select(func.count()).select_from(Inquiry))
        order.append("click")

    async def planned(ctx: Any, session: Any, plans: list[Any], draws: Any) -> None:
        await real_planned(ctx, session, plans, draws)
        if not clicked:  # the click arrives (a request of its own) while the batch writes
            loop = asyncio.get_running_loop()
            clicked.append(loop.create_task(click(), context=contextvars.Context()))

    intake.write_planned = planned  # type: ignore[assignment]
    try:
        batches_before = writer.batches

        async def post(i: int) -> None:
            status, _ = await _post(client, _body(i), f"p{i}")
            assert status == 202
            order.append(f"webhook {i}")

        await asyncio.gather(*(post(i) for i in range(10)))
        await clicked[0]
    finally:
        intake.write_planned = real_planned  # type: ignore[assignment]
    assert writer.batches - batches_before >= 2, "the batch ended for the click"
    assert order.index("click") < len(order) - 1, order  # before the batch's last items
    assert await _count(service, Inquiry) == 10
    assert await _count(service, WebhookKey) == 10


async def test_a_burst_waits_at_the_door(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """No more than ``max_in_flight`` webhooks are admitted at once; the rest wait their turn
    and every one of them is stored, once, and answered after its commit."""
    service = await service_factory(settings_with_form_hook(smtp.port, db_url))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    writer.max_in_flight = 5
    writer._admission = None  # made again, with the new cap, by the next request
    writer.peak_in_flight = 0
    answers = await asyncio.gather(*(_post(client, _body(i), f"d{i}") for i in range(30)))
    assert [status for status, _ in answers] == [202] * 30
    assert len({a["inquiry"] for _, a in answers}) == 30
    assert await _count(service, Inquiry) == 30
    assert writer.peak_in_flight == 5
    assert writer.in_flight == 0


async def test_a_slow_sender_holds_no_place_at_the_door(
    sqlite_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """A place is taken once the body has been read: with one place, a sender trickling its
    body in does not stop another webhook from being stored and answered meanwhile."""
    service = await service_factory(settings_with_form_hook(smtp.port, sqlite_url))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    writer.max_in_flight = 1
    writer._admission = None
    slow_body = _body(1)
    reader, stream = await asyncio.open_connection(client.host, client.port)
    stream.write(
        b"POST /webhooks/website HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(slow_body)}\r\n".encode()
        + b"X-Claimdesk-Signature: "
        + sign_body(WEBHOOK_SECRET, slow_body).encode()
        + b"\r\n\r\n"
        + slow_body[:10]
    )
    await stream.drain()
    await asyncio.sleep(0.1)  # the slow request is in, its body not
    status, answer = await asyncio.wait_for(_post(client, _body(2), "fast"), timeout=5)
    assert status == 202 and answer["duplicate"] is False
    stream.write(slow_body[10:])
    await stream.drain()
    response = await asyncio.wait_for(reader.read(), timeout=5)
    stream.close()
    assert response.startswith(b"HTTP/1.1 202")
    assert await _count(service, Inquiry) == 2


async def test_interactive_writers_go_before_bulk_waiters() -> None:
    lock = WriteLock()
    order: list[str] = []
    await lock.acquire()

    async def writer(name: str, *, bulk: bool) -> None:
        await lock.acquire(bulk=bulk)
        order.append(name)
        lock.release()

    tasks = [asyncio.create_task(writer(f"bulk{i}", bulk=True)) for i in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(writer("click", bulk=False)))
    await asyncio.sleep(0)
    assert lock.waiting() == 4
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["click", "bulk0", "bulk1", "bulk2"]


async def test_a_cancelled_waiter_passes_the_lock_on() -> None:
    lock = WriteLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire(bulk=True))
    second = asyncio.create_task(lock.acquire(bulk=True))
    await asyncio.sleep(0)
    first.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=5)
    lock.release()
    assert lock.waiting() == 0


async def test_in_a_batch_each_timeline_starts_with_received_then_assigned(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """A new item's "received" Event is written without an ORM object; with round-robin
    assignment the "assigned" Event (an ORM object) follows it. Three items in one batch:
    each timeline, in id order, is received then assigned (an item's received row must not
    wait behind the others' ORM flush)."""
    mapping = base_config(smtp.port, db_url)
    mapping["teams"][0]["assignment"] = "round_robin"
    service = await service_factory(settings_from_mapping(mapping, source="test.toml", env={}))
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    writer.linger, writer.max_hold = 1.0, 60.0  # the three join one batch
    batches_before = writer.batches
    answers = await asyncio.gather(*(_post(client, _body(i), f"rr{i}") for i in range(3)))
    assert writer.batches - batches_before == 1
    assert [status for status, _ in answers] == [202, 202, 202]
    async with transaction(service.ctx.readers) as session:
        for _status, answer in answers:
            kinds = (
                await session.exec(
                    select(Event.kind)
                    .where(Event.inquiry_id == answer["inquiry"])
                    .order_by(col(Event.id))
                )
            ).all()
            assert list(kinds[:2]) == ["received", "assigned"], kinds


@pytest.mark.parametrize("assignment", ["pool", "round_robin", "least_open", "sticky"])
async def test_new_items_written_together_store_what_one_by_one_stores(
    db_url: str,
    smtp: Any,
    service_factory: Any,
    client_factory: Any,
    monkeypatch: Any,
    assignment: str,
) -> None:
    """New items share one statement per table (``write_planned``): each inquiry's rows
    (contact and address, inquiry, message, "received" event with its explanation, the
    "assigned" event, the new owner's notice and the card posts in the outbox) are those the
    one-by-one path writes for the same form, and their numbers follow the order the
    requests were taken in. With a team that assigns, the batch draws the reps the
    one-by-one path draws: round-robin turns in order, open counts growing (least open), a
    sticky team's new customer by its strategy (Alice has a Slack id: a DM; Bob an email)."""
    import bot.interfaces.webhook_intake as intake
    from bot.interfaces.webhook_intake import intake_webhook_alone
    from connectors.webhooks import InboundForm
    from store.models import Contact

    strategy = "round_robin" if assignment == "sticky" else assignment
    sales = {"sticky": assignment == "sticky", "members": ["alice", "bob"]}
    service = await service_factory(_settings_assigning(smtp.port, db_url, strategy, sales=sales))
    client = await client_factory(service, background=False)
    planned: list[int] = []
    real_planned = intake.write_planned

    async def counted(ctx: Any, session: Any, plans: list[Any], draws: Any) -> None:
        planned.append(len(plans))
        await real_planned(ctx, session, plans, draws)

    monkeypatch.setattr(intake, "write_planned", counted)
    writer = intake_writer(service.ctx)
    writer.linger, writer.max_hold = 1.0, 60.0  # the four join one batch
    writer.breather = 60.0  # and are written in one go (no pause for the loop between them)
    batches_before = writer.batches
    posts = []
    for i in range(4):
        posts.append(asyncio.ensure_future(_post(client, _body(i), f"t{i}")))
        await asyncio.sleep(0.01)  # taken in this order
    answers = await asyncio.gather(*posts)
    assert writer.batches - batches_before == 1
    together = [answer["inquiry"] for _status, answer in answers]
    assert together == sorted(together)
    alone = []
    for i in range(10, 14):
        data = json.loads(_body(i))
        form = InboundForm(
            webhook="website",
            email=data["email"],
            name=data["name"],
            subject=data["subject"],
            message=data["message"],
            idempotency_key=f"t{i}",
            body_sha256=f"{i:064x}",
        )
        alone.append((await intake_webhook_alone(service.ctx, form)).inquiry_id)

    async def rows(number: int, i: int) -> dict[str, Any]:
        def plain(value: Any) -> Any:  # the item's own number and index made neutral
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            if isinstance(value, str):
                for mine, neutral in (
                    (f":{number}", ":N"),
                    (f"buyer{i}@", "buyerI@"),
                    (f"Buyer {i}", "Buyer I"),
                    (f"Quotation {i}:", "Quotation I:"),
                    (f"quote {100 + i} pcs", "quote I pcs"),
                ):
                    value = value.replace(mine, neutral)
                # the turn and the open count differ by design (checked below)
                value = re.sub(r"\(turn \d+\)", "(turn T)", value)
                return re.sub(r"\(\d+ open\)", "(K open)", value)
            return value

        async with transaction(service.ctx.readers) as session:
            inquiry = await session.get(Inquiry, number)
            assert inquiry is not None
            contact = await session.get(Contact, inquiry.contact_id)
            address = (
                await session.exec(
                    select(ContactEmail.address).where(
                        ContactEmail.contact_id == inquiry.contact_id
                    )
                )
            ).all()
            message = (
                await session.exec(select(Message).where(Message.inquiry_id == number))
            ).one()
            events = (await session.exec(select(Event).where(Event.inquiry_id == number))).all()
            cards = (await session.exec(select(Outbox).where(Outbox.inquiry_id == number))).all()
        skip = {
            "id",
            "inquiry_id",
            "contact_id",
            "dedupe_key",
            "created_at",
            "received_at",
            "updated_at",
            "last_customer_message_at",
            "claim_due_at",
            "next_due_at",
            "at",
            "next_attempt_at",
            "claimed_at",
            "reply_due_at",
        }

        def fields(row: Any) -> dict[str, Any]:
            return {k: v for k, v in row.model_dump().items() if k not in skip}

        due = inquiry.reply_due_at if inquiry.assignee else inquiry.claim_due_at
        assert due is not None
        return plain(
            {
                "inquiry": fields(inquiry),
                "due": due == inquiry.next_due_at,
                "claimed": inquiry.claimed_at
                == (inquiry.received_at if inquiry.assignee else None),
                "contact": fields(contact),
                "addresses": list(address),
                "message": fields(message),
                "events": [fields(e) for e in events],
                "outbox": sorted((c.key, c.kind, c.state, c.lane, c.destination) for c in cards),
            }
        )

    for (a, i), (b, j) in zip(
        zip(together, range(4), strict=True), zip(alone, range(10, 14), strict=True), strict=True
    ):
        written_together, written_alone = await rows(a, i), await rows(b, j)
        assert written_together["outbox"], "Slack is on: a card post is queued"
        for part, value in written_together.items():
            assert value == written_alone[part], part
    assert planned == [4], "the four new items were written together"
    async with transaction(service.ctx.readers) as session:
        owners = [(await session.get(Inquiry, n)).assignee for n in together + alone]  # type: ignore[union-attr]
        reasons = (
            await session.exec(
                select(Event.data).where(Event.kind == "assigned").order_by(col(Event.inquiry_id))
            )
        ).all()
        turn = await session.get(AssignmentTurn, "sales")
    if assignment == "pool":
        assert owners == [None] * 8 and not reasons
        return
    assert owners == ["bob", "alice"] * 4 if strategy == "round_robin" else ["alice", "bob"] * 4
    said = [str(data["reason"]) for data in reasons]
    if strategy == "round_robin":  # one turn each, in the order taken, then one by one
        assert said == [f"round robin (turn {n})" for n in range(1, 9)]
        assert turn is not None and turn.n == 8
    else:  # each choice saw the ones before it
        assert said == [f"least open ({n // 2} open)" for n in range(8)]


async def _two_processes(
    postgres: Any, smtp: Any, service_factory: Any, client_factory: Any, caplog: Any
) -> tuple[list[Any], list[Any]]:
    """Two services on one fresh PostgreSQL database (two processes), each writing its
    whole share of a burst in one batch; the intake's log captured."""
    import logging

    from tests.conftest import need

    need(postgres is not None, "PostgreSQL server binaries not installed")
    url = postgres.new_database()
    services = [await service_factory(settings_with_form_hook(smtp.port, url)) for _ in (0, 1)]
    clients = [await client_factory(s, background=False) for s in services]
    for service in services:
        writer = intake_writer(service.ctx)
        writer.linger, writer.max_hold = 0.3, 60.0  # each takes its whole share in one batch
    caplog.set_level(logging.INFO, logger="bot.interfaces.webhook_intake")
    return services, clients


async def test_two_processes_taking_one_request_at_once_keep_their_batches(
    postgres: Any,
    smtp: Any,
    service_factory: Any,
    client_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL, two processes (two services on one database): the same request (body and
    Idempotency-Key) reaches both at the same moment, each inside a batch of other new
    requests. The second batch waits for the first's commit at the request's key lock
    (``store.key_locks``), then reads it and answers it as a duplicate: every request is
    stored once and nobody's batch falls apart."""
    services, clients = await _two_processes(
        postgres, smtp, service_factory, client_factory, caplog
    )
    shared = []
    for trial in range(3):
        posts = [_post(client, _body(9000 + trial), f"both{trial}") for client in clients]
        posts += [
            _post(clients[n % 2], _body(100 * trial + n), f"own{trial}-{n}") for n in range(8)
        ]
        answers = await asyncio.gather(*posts)
        assert [status for status, _ in answers] == [202] * 10, answers
        assert answers[0][1]["inquiry"] == answers[1][1]["inquiry"]
        assert sorted([answers[0][1]["duplicate"], answers[1][1]["duplicate"]]) == [False, True]
        shared.append(answers[0][1]["inquiry"])
    assert await _count(services[0], Inquiry) == 3 * 9
    assert await _count(services[0], WebhookKey) == 3 * 9
    assert not [r for r in caplog.records if "redoing" in r.getMessage()], "a batch fell apart"


async def test_two_processes_whose_batches_share_keys_in_crossing_orders_wait_not_fail(
    postgres: Any,
    smtp: Any,
    service_factory: Any,
    client_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL, two processes: each batch holds two requests the other batch holds too,
    taken in the opposite order, and a new customer's second inquiry whose address the
    other batch creates. Unlocked, the batches deadlocked or met each other's uncommitted
    rows at the unique indexes, were rolled back and written again, then redone item by
    item (the PostgreSQL curve fell from 270 to 190 req/s with one request in ten sent to
    two processes). Each batch now locks its keys before it reads: one waits for the
    other's commit and answers the shared requests as duplicates; nothing is written twice
    and no batch is rewritten."""
    services, clients = await _two_processes(
        postgres, smtp, service_factory, client_factory, caplog
    )

    def same_customer(i: int) -> bytes:  # a new address, each body its own inquiry
        return json.dumps(
            {"email": "newbuyer@importer.example", "subject": f"Panels {i}", "message": "Quote"}
        ).encode()

    for trial in range(3):
        one, two = _body(7000 + 2 * trial), _body(7001 + 2 * trial)
        ka, kb = f"a{trial}", f"b{trial}"
        posts = [
            _post(clients[0], one, ka),
            _post(clients[0], two, kb),
            _post(clients[0], same_customer(2 * trial), f"c{trial}"),
            _post(clients[1], two, kb),
            _post(clients[1], one, ka),
            _post(clients[1], same_customer(2 * trial + 1), f"d{trial}"),
        ]
        answers = await asyncio.gather(*posts)
        assert [status for status, _ in answers] == [202] * 6, answers
        for first, second in ((0, 4), (1, 3)):
            assert answers[first][1]["inquiry"] == answers[second][1]["inquiry"]
            pair = [answers[first][1]["duplicate"], answers[second][1]["duplicate"]]
            assert sorted(pair) == [False, True]
    assert await _count(services[0], Inquiry) == 3 * 4
    assert await _count(services[0], WebhookKey) == 3 * 4
    assert await _count(services[0], ContactEmail) == 3 * 2 + 1
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "redoing" in m or "again" in m], said


async def test_a_batch_draws_turns_around_an_item_written_one_by_one(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """A round-robin batch of new senders with a returning customer in the middle: the
    new ones are drawn in memory, the returning one reads and draws from the store (its
    contact exists), and the turns still go one per inquiry in the order taken, as one by
    one (nobody skipped, no turn given twice), the stored counter one per inquiry."""
    settings = _settings_assigning(
        smtp.port, db_url, "round_robin", sales={"members": ["alice", "bob", "rep0"]}
    )
    service = await service_factory(settings)
    client = await client_factory(service, background=False)
    status, first = await _post(client, _body(2), "returning-1")  # buyer2 becomes known
    assert status == 202
    writer = intake_writer(service.ctx)
    writer.linger, writer.max_hold = 1.0, 60.0
    batches_before = writer.batches
    posts = []
    for i, key in ((10, "n10"), (11, "n11"), (2, "returning-2"), (12, "n12"), (13, "n13")):
        body = _body(i) if key != "returning-2" else _body(i).replace(b"Please", b"Again")
        posts.append(asyncio.ensure_future(_post(client, body, key)))
        await asyncio.sleep(0.01)  # taken in this order
    answers = await asyncio.gather(*posts)
    assert writer.batches - batches_before == 1
    numbers = [first["inquiry"]] + [answer["inquiry"] for _status, answer in answers]
    assert numbers == sorted(numbers)
    async with transaction(service.ctx.readers) as session:
        owners = [(await session.get(Inquiry, n)).assignee for n in numbers]  # type: ignore[union-attr]
        turn = await session.get(AssignmentTurn, "sales")
    members = ["alice", "bob", "rep0"]
    assert owners == [members[n % 3] for n in range(1, 7)]
    assert turn is not None and turn.n == 6


async def test_a_batch_counts_its_own_choices_across_teams(
    db_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    """Two teams share Bob and Alice: sales draws round robin (it counts nobody's open
    inquiries), asia takes the least loaded. In one batch, a sales inquiry goes to Alice;
    the asia one after it then finds Alice with one open inquiry more than the store shows
    (it is not written yet) and goes to Bob, as one by one it would."""
    settings = _settings_assigning(
        smtp.port,
        db_url,
        "least_open",
        sales={"members": ["bob", "alice"], "assignment": "round_robin"},
        asia={"members": ["alice", "bob"]},
    )
    service = await service_factory(settings)
    client = await client_factory(service, background=False)
    writer = intake_writer(service.ctx)
    writer.linger, writer.max_hold = 1.0, 60.0
    chinese = json.dumps(
        {
            "email": "wang@importer.example",
            "name": "王先生",
            "subject": "询价：LED 面板",
            "message": "您好，请报价六百乘六百的LED面板一百件，运往上海港，谢谢。",
        }
    ).encode()
    batches_before = writer.batches
    first = asyncio.ensure_future(_post(client, _body(1), "cross-1"))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(_post(client, chinese, "cross-2"))
    answers = await asyncio.gather(first, second)
    assert [status for status, _ in answers] == [202, 202]
    assert writer.batches - batches_before == 1
    async with transaction(service.ctx.readers) as session:
        rows = [await session.get(Inquiry, answer["inquiry"]) for _status, answer in answers]
    assert [(row.team, row.assignee) for row in rows if row is not None] == [
        ("sales", "alice"),
        ("asia", "bob"),
    ]
