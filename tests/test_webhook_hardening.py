"""Intake hardening (issue 8): bodies read whole, Idempotency-Key reuse, replay, no 500 on bad input.

Requests that aiohttp's client would not send (split bodies, non-ASCII headers)
go over a raw socket to the real server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.loading import settings_from_mapping
from connectors.web.auth import COOKIE, login_link
from connectors.webhooks import TIMESTAMP_TOLERANCE, sign_body
from tests.conftest import API_TOKEN, WEBHOOK_SECRET, MovableClock, base_config
from tests.support.slack import slack_config
from tests.test_webhooks import GOOD, count_inquiries

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FORM_TOKEN = "form-token-123"


def settings_with_form_hook(
    smtp_port: int, db_url: str, slack_api: str = "http://127.0.0.1:9/api/"
) -> Any:
    """The test config plus a token-authenticated flat form webhook and Slack switched on."""
    data = slack_config(base_config(smtp_port, db_url), slack_api)
    data = copy.deepcopy(data)
    data["webhooks"].append({"name": "form", "token": FORM_TOKEN, "team": "sales"})
    return settings_from_mapping(data, source="test.toml", env={})


@pytest.fixture
async def app(sqlite_url: str, smtp: Any, service_factory: Any, client_factory: Any) -> Any:
    service = await service_factory(settings_with_form_hook(smtp.port, sqlite_url))
    client = await client_factory(service, background=False)
    return service, client


@pytest.fixture
async def app_any_db(db_url: str, smtp: Any, service_factory: Any, client_factory: Any) -> Any:
    """The same on SQLite and on a real PostgreSQL (key races meet at different locks there)."""
    service = await service_factory(settings_with_form_hook(smtp.port, db_url))
    client = await client_factory(service, background=False)
    return service, client


async def raw_request(
    client: Any,
    method: str,
    path: str,
    headers: list[tuple[str, bytes]],
    body: bytes = b"",
    *,
    split_at: int | None = None,
) -> tuple[int, bytes]:
    """One HTTP/1.1 request over a raw socket; the body optionally in two writes with a pause."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {client.host}\r\nConnection: close\r\n".encode()
    head += f"Content-Length: {len(body)}\r\n".encode()
    for name, value in headers:
        head += name.encode() + b": " + value + b"\r\n"
    writer.write(head + b"\r\n")
    if split_at is None:
        writer.write(body)
    else:
        writer.write(body[:split_at])
        await writer.drain()
        await asyncio.sleep(0.15)  # the rest arrives in a later packet
        writer.write(body[split_at:])
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


async def stored_text(client: Any, number: int) -> str:
    detail = await (await client.get(f"/api/inquiries/{number}", headers=AUTH)).json()
    return str(detail["messages"][0]["text"])


# -- 1. bodies arriving in several packets are read whole --------------------------------


async def test_signed_40kb_body_in_two_packets_is_stored_whole(app: Any) -> None:
    _, client = app
    message = "Please quote. " + "0123456789" * 1_900
    raw = json.dumps({**GOOD, "message": message, "notes": "n" * 21_000}).encode()
    assert len(raw) > 40_000
    status, payload = await raw_request(
        client,
        "POST",
        "/webhooks/website",
        [
            ("Content-Type", b"application/json"),
            ("X-Claimdesk-Signature", sign_body(WEBHOOK_SECRET, raw).encode()),
        ],
        raw,
        split_at=len(raw) // 2,
    )
    assert status == 202, payload
    assert await stored_text(client, json.loads(payload)["inquiry"]) == message


async def test_token_form_with_3000_character_message_in_two_packets_is_stored_whole(
    app: Any,
) -> None:
    _, client = app
    message = "".join(f"line {i:04d} of the order list; " for i in range(110))[:2_999] + "."
    assert len(message) == 3_000
    raw = urlencode({"email": "p@x.example", "name": "Pablo", "message": message}).encode()
    status, payload = await raw_request(
        client,
        "POST",
        "/webhooks/form",
        [
            ("Content-Type", b"application/x-www-form-urlencoded"),
            ("X-Claimdesk-Token", FORM_TOKEN.encode()),
        ],
        raw,
        split_at=1_000,
    )
    assert status == 202, payload
    assert await stored_text(client, json.loads(payload)["inquiry"]) == message


async def test_body_over_the_limit_without_content_length_is_413(app: Any) -> None:
    _, client = app
    chunks = [b"x" * 100_000] * 3  # 300 kB chunked: no Content-Length to refuse up front

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    response = await client.post(
        "/webhooks/form",
        data=body(),
        headers={"Content-Type": "application/json", "X-Claimdesk-Token": FORM_TOKEN},
    )
    assert response.status == 413
    assert await count_inquiries(client) == 0


# -- 2. Idempotency-Key ------------------------------------------------------------------


async def post_signed(client: Any, body: dict[str, Any], **headers: str) -> Any:
    raw = json.dumps(body).encode()
    return await client.post(
        "/webhooks/website",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
            **headers,
        },
    )


async def test_same_key_same_body_is_the_same_inquiry(app_any_db: Any) -> None:
    _, client = app_any_db
    first = await post_signed(client, GOOD, **{"Idempotency-Key": "order-1"})
    again = await post_signed(client, GOOD, **{"Idempotency-Key": "order-1"})
    assert first.status == again.status == 202
    one, two = await first.json(), await again.json()
    assert (one["duplicate"], two["duplicate"]) == (False, True)
    assert one["inquiry"] == two["inquiry"]


async def test_reused_key_with_another_body_is_409_and_stores_nothing(app_any_db: Any) -> None:
    _, client = app_any_db
    first = await post_signed(client, GOOD, **{"Idempotency-Key": "order-2"})
    assert first.status == 202
    other = await post_signed(
        client, {**GOOD, "message": "a different question"}, **{"Idempotency-Key": "order-2"}
    )
    assert other.status == 409
    error = (await other.json())["error"]
    assert "Idempotency-Key" in error and "\n" not in error
    assert await count_inquiries(client) == 1
    # the key still names its first body
    again = await post_signed(client, GOOD, **{"Idempotency-Key": "order-2"})
    assert (await again.json())["inquiry"] == (await first.json())["inquiry"]


async def test_one_key_racing_with_two_bodies_gives_one_202_and_one_409(app_any_db: Any) -> None:
    _, client = app_any_db
    responses = await asyncio.gather(
        *(
            post_signed(client, {**GOOD, "message": f"body {i}"}, **{"Idempotency-Key": "race"})
            for i in range(6)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [202, 409, 409, 409, 409, 409]
    assert await count_inquiries(client) == 1


# -- 3. replay -----------------------------------------------------------------------------


async def test_captured_request_replayed_with_new_keys_makes_one_inquiry(app_any_db: Any) -> None:
    _, client = app_any_db
    raw = json.dumps(GOOD).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
    }
    numbers = set()
    for key in ("k-1", "k-2", "k-3", ""):
        extra = {"Idempotency-Key": key} if key else {}
        response = await client.post("/webhooks/website", data=raw, headers={**headers, **extra})
        assert response.status == 202
        numbers.add((await response.json())["inquiry"])
    assert len(numbers) == 1
    assert await count_inquiries(client) == 1


def timestamped(raw: bytes, stamp: int, *, signed_stamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Claimdesk-Timestamp": str(stamp),
        "X-Claimdesk-Signature": sign_body(
            WEBHOOK_SECRET, raw, stamp if signed_stamp is None else signed_stamp
        ),
    }


async def test_timestamped_signature_is_accepted_within_five_minutes(app: Any) -> None:
    _, client = app
    raw = json.dumps(GOOD).encode()
    now = int(time.time())
    response = await client.post(
        "/webhooks/website", data=raw, headers=timestamped(raw, now - TIMESTAMP_TOLERANCE + 30)
    )
    assert response.status == 202


@pytest.mark.parametrize(
    "case",
    ["too old", "too far ahead", "stamp changed", "body-only signature", "not a number"],
)
async def test_timestamped_signature_refusals(app: Any, case: str) -> None:
    _, client = app
    raw = json.dumps(GOOD).encode()
    now = int(time.time())
    headers = {
        "too old": timestamped(raw, now - TIMESTAMP_TOLERANCE - 30),
        "too far ahead": timestamped(raw, now + TIMESTAMP_TOLERANCE + 30),
        "stamp changed": timestamped(raw, now, signed_stamp=now - 1),
        "body-only signature": {
            **timestamped(raw, now),
            "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
        },
        "not a number": {**timestamped(raw, now), "X-Claimdesk-Timestamp": "soon"},
    }[case]
    response = await client.post("/webhooks/website", data=raw, headers=headers)
    assert response.status == 401
    assert await count_inquiries(client) == 0


async def test_identical_body_after_the_dedupe_window_is_a_new_inquiry(
    sqlite_url: str, smtp: Any, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock()
    service = await service_factory(settings_with_form_hook(smtp.port, sqlite_url), clock=clock)
    client = await client_factory(service, background=False)
    first = await (await post_signed(client, GOOD)).json()
    clock.advance(hours=23)
    within = await (await post_signed(client, GOOD, **{"Idempotency-Key": "new"})).json()
    assert within == {**first, "duplicate": True}
    clock.advance(hours=2)  # 25 h after the first
    later = await (await post_signed(client, GOOD)).json()
    assert later["duplicate"] is False
    assert later["inquiry"] != first["inquiry"]
    again = await (await post_signed(client, GOOD)).json()
    assert again == {**later, "duplicate": True}
    assert await count_inquiries(client) == 2


# -- 5. bad input is a 4xx with a one-line reason, never a 500 ------------------------------


async def signed_in_cookie(service: Any, client: Any) -> str:
    response = await client.get(login_link(service.signer, "", "alice"), allow_redirects=False)
    assert response.status == 302
    return str(response.cookies[COOKIE].value)


def signed(raw: bytes, ctype: bytes = b"application/json") -> list[tuple[str, bytes]]:
    return [
        ("Content-Type", ctype),
        ("X-Claimdesk-Signature", sign_body(WEBHOOK_SECRET, raw).encode()),
    ]


DEEP = b'{"email": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
LONG_INT = b'{"email": "a@b.example", "message": "hi", "n": ' + b"7" * 5_000 + b"}"
SURROGATE = b'{"email": "a@b.example", "message": "\\ud800"}'
HUGE = "9" * 30


def bad_requests(
    cookie: str, csrf: str
) -> dict[str, tuple[str, str, list[tuple[str, bytes]], bytes]]:
    web = [("Cookie", f"{COOKIE}={cookie}".encode()), ("Content-Type", b"application/json")]
    ok_json = json.dumps(GOOD).encode()
    return {
        "non-ASCII signature": (
            "POST",
            "/webhooks/website",
            [("Content-Type", b"application/json"), ("X-Claimdesk-Signature", "sha256=é".encode())],
            ok_json,
        ),
        "non-ASCII token": (
            "POST",
            "/webhooks/form",
            [("Content-Type", b"application/json"), ("X-Claimdesk-Token", "tökén".encode())],
            ok_json,
        ),
        "non-ASCII bearer on webhook": (
            "POST",
            "/webhooks/form",
            [("Content-Type", b"application/json"), ("Authorization", "Bearer ü".encode())],
            ok_json,
        ),
        "non-ASCII bearer on api": (
            "GET",
            "/api/inquiries",
            [("Authorization", "Bearer ü".encode())],
            b"",
        ),
        "non-ASCII CSRF": (
            "POST",
            "/web/actions",
            [*web, ("X-CSRF-Token", "ç".encode())],
            b'{"action": "cd1:claim:1001"}',
        ),
        "non-ASCII session cookie": (
            "POST",
            "/web/actions",
            [("Cookie", f"{COOKIE}=ß".encode()), ("X-CSRF-Token", csrf.encode())],
            b"{}",
        ),
        "bogus charset": (
            "POST",
            "/webhooks/website",
            signed(ok_json, b"application/json; charset=bogus"),
            ok_json,
        ),
        "JSON 100,000 deep": ("POST", "/webhooks/website", signed(DEEP), DEEP),
        "integer of 5,000 digits": ("POST", "/webhooks/website", signed(LONG_INT), LONG_INT),
        "lone surrogate": ("POST", "/webhooks/website", signed(SURROGATE), SURROGATE),
        "NaN": (
            "POST",
            "/webhooks/website",
            signed(b'{"email": "a@b.example", "message": "x", "n": NaN}'),
            b'{"email": "a@b.example", "message": "x", "n": NaN}',
        ),
        "oversized api id": (
            "GET",
            f"/api/inquiries/{HUGE}",
            [("Authorization", API_TOKEN.encode())],
            b"",
        ),
        "oversized api id, authorized": (
            "GET",
            f"/api/inquiries/{HUGE}",
            [("Authorization", f"Bearer {API_TOKEN}".encode())],
            b"",
        ),
        "oversized id in a web action": (
            "POST",
            "/web/actions",
            [*web, ("X-CSRF-Token", csrf.encode())],
            json.dumps({"action": f"cd1:claim:{HUGE}"}).encode(),
        ),
        "oversized id in a web page": ("GET", f"/web/inquiries/{HUGE}", web, b""),
        "oversized id in a reply post": (
            "POST",
            f"/web/inquiries/{HUGE}/reply",
            [
                ("Cookie", f"{COOKIE}={cookie}".encode()),
                ("Content-Type", b"application/x-www-form-urlencoded"),
            ],
            f"csrf={csrf}&subject=s&body=b".encode(),
        ),
        "garbled action id": (
            "POST",
            "/web/actions",
            [*web, ("X-CSRF-Token", csrf.encode())],
            json.dumps({"action": "cd1:claim:１２"}).encode(),
        ),
        "web action with bogus charset": (
            "POST",
            "/web/actions",
            [
                ("Cookie", f"{COOKIE}={cookie}".encode()),
                ("Content-Type", b"application/json; charset=bogus"),
                ("X-CSRF-Token", csrf.encode()),
            ],
            b'{"action": "cd1:claim:1001"}',
        ),
        "web action nested deep": (
            "POST",
            "/web/actions",
            [*web, ("X-CSRF-Token", csrf.encode())],
            b'{"action": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        ),
        "away form with bogus charset": (
            "POST",
            "/web/away",
            [
                ("Cookie", f"{COOKIE}={cookie}".encode()),
                ("Content-Type", b"application/x-www-form-urlencoded; charset=bogus"),
            ],
            f"csrf={csrf}&away=1".encode(),
        ),
        "non-numeric Slack timestamp": (
            "POST",
            "/slack/events",
            [
                ("Content-Type", b"application/x-www-form-urlencoded"),
                ("X-Slack-Request-Timestamp", b"yesterday"),
                ("X-Slack-Signature", b"v0=" + b"0" * 64),
            ],
            b"payload=%7B%7D",
        ),
        "Slack body that is not the JSON it claims": (  # found by the inbound fuzz test
            "POST",
            "/slack/events",
            [("Content-Type", b"application/json")],
            b"\x00",
        ),
        "Slack JSON nested deep": (  # found by the inbound fuzz test (RecursionError in Bolt)
            "POST",
            "/slack/events",
            [("Content-Type", b"application/json")],
            b'{"email": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        ),
        "Slack form payload nested deep": (
            "POST",
            "/slack/events",
            [("Content-Type", b"application/x-www-form-urlencoded")],
            b"payload=" + b"%5B" * 20_000 + b"%5D" * 20_000,
        ),
        "non-ASCII Slack signature": (
            "POST",
            "/slack/events",
            [
                ("Content-Type", b"application/x-www-form-urlencoded"),
                ("X-Slack-Request-Timestamp", str(int(time.time())).encode()),
                ("X-Slack-Signature", "v0=é".encode()),
            ],
            b"payload=%7B%7D",
        ),
    }


CASES = list(bad_requests("c", "t"))


@pytest.mark.parametrize("case", CASES)
async def test_bad_input_is_a_4xx_with_a_one_line_reason(
    app: Any, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    service, client = app
    cookie = await signed_in_cookie(service, client)
    csrf = service.signer.csrf_token(cookie)
    method, path, headers, body = bad_requests(cookie, csrf)[case]
    before = await count_inquiries(client)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status, payload = await raw_request(client, method, path, headers, body)
    assert 400 <= status < 500, (status, payload[:300])
    reason = payload.decode("utf-8", "replace").strip()
    assert reason and "\n" not in reason and "Traceback" not in reason, reason[:300]
    assert not [r for r in caplog.records if r.exc_info], "a refusal logged a traceback"
    assert await count_inquiries(client) == before


async def test_unexpected_error_is_a_bare_500_with_the_traceback_only_in_the_log(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    service, _ = app

    async def broken(request: Any) -> Any:
        raise RuntimeError("secret internals")

    web_app = service.web_app(background=False)
    web_app.router.add_get("/boom", broken)
    client: TestClient[Any, Any] = TestClient(TestServer(web_app, host="127.0.0.1"))
    await client.start_server()
    try:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/boom")
        assert response.status == 500
        text = await response.text()
        assert "secret internals" not in text and "Traceback" not in text
        assert any(r.exc_info for r in caplog.records)
    finally:
        await client.close()
