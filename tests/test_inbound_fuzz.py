"""Property: no inbound path answers 5xx, and a refused request stores nothing.

Hypothesis draws requests to the webhooks, ``/api``, the web inbox's actions and
pages, and ``/slack/events``: random credentials (non-ASCII too), content types
(bogus charsets too), ids, and bodies from raw bytes to JSON with huge
numbers, deep nesting and lone surrogates. Some webhook and Slack bodies are
correctly signed, so the parsing behind authentication is exercised as well.
Requests go over a raw socket to the real server (aiohttp's client would not
send some of these headers).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func
from sqlmodel import select

from connectors.web.auth import COOKIE, login_link
from connectors.webhooks import sign_body
from store.engine import transaction
from store.models import Inquiry
from tests.conftest import API_TOKEN, WEBHOOK_SECRET
from tests.fakes.slack_api import FakeSlack
from tests.support.slack import CHANNEL, SIGNING_SECRET
from tests.test_webhook_hardening import FORM_TOKEN, raw_request, settings_with_form_hook

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# header-safe text: anything but CR, LF and NUL (those would frame a different request)
header_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=40,
)
ids = st.one_of(
    st.integers(min_value=-5, max_value=2**70).map(str),
    st.sampled_from(["１２", "1_0", "0", "00", "9" * 40, "1e3", "%31", "abc"]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_json = st.sampled_from(
    [
        b'{"email": "a@b.example", "message": "' + b"\\ud800" + b'"}',
        b'{"email": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"email": "a@b.example", "message": "x", "n": ' + b"1" * 4_400 + b"}",
        b'{"email": "a@b.example", "message": "x", "n": Infinity}',
        b'{"email": "a@b.example", "message": "x"',
        b"[]",
        b"null",
        b'"\\udfff"',
    ]
)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(json_bytes),
    st.dictionaries(
        st.sampled_from(["email", "name", "message", "subject", "country", "buyer", "title"]),
        json_values,
        max_size=6,
    ).map(json_bytes),
    hostile_json,
)
content_types = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=bogus",
        b"application/json; charset=utf-16",
        b"application/x-www-form-urlencoded",
        b"application/x-www-form-urlencoded; charset=nope",
        b"multipart/form-data; boundary=x",
        b"text/plain",
        "application/jsön".encode(),
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, bytes]], bytes, str]:
    """(method, path, headers, body, what): a request to one of the inbound surfaces."""
    body = draw(bodies)
    headers: list[tuple[str, bytes]] = [("Content-Type", draw(content_types))]
    what = draw(
        st.sampled_from(
            [
                "website",
                "website-signed",
                "form",
                "api",
                "api-one",
                "action",
                "page",
                "reply",
                "slack",
                "slack-signed",
            ]
        )
    )
    extra = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "X-Claimdesk-Signature",
                        "X-Claimdesk-Timestamp",
                        "X-Claimdesk-Token",
                        "Authorization",
                        "Idempotency-Key",
                        "X-CSRF-Token",
                        "X-Slack-Request-Timestamp",
                        "X-Slack-Signature",
                        "Cookie",
                    ]
                ),
                header_text,
            ),
            max_size=3,
        )
    )
    headers += [(name, value.encode("utf-8")) for name, value in extra]
    if what == "website":
        return "POST", "/webhooks/website", headers, body, what
    if what == "website-signed":
        if draw(st.booleans()):
            stamp = str(int(time.time()))
            headers += [
                ("X-Claimdesk-Timestamp", stamp.encode()),
                ("X-Claimdesk-Signature", sign_body(WEBHOOK_SECRET, body, stamp).encode()),
            ]
        else:
            headers.append(("X-Claimdesk-Signature", sign_body(WEBHOOK_SECRET, body).encode()))
        return "POST", "/webhooks/website", headers, body, what
    if what == "form":
        headers.append(("X-Claimdesk-Token", FORM_TOKEN.encode()))
        return "POST", "/webhooks/form", headers, body, what
    if what == "api":
        return "GET", "/api/inquiries?limit=" + draw(ids), headers, b"", what
    if what == "api-one":
        headers.append(("Authorization", f"Bearer {API_TOKEN}".encode()))
        return "GET", "/api/inquiries/" + draw(ids), headers, b"", what
    if what == "action":
        action = draw(st.one_of(st.text(max_size=30), ids.map(lambda i: f"cd1:claim:{i}")))
        raw = draw(st.sampled_from([json_bytes({"action": action, "value": "won"}), body]))
        return "POST", "/web/actions", [*headers, ("X-Signed-In", b"1")], raw, what
    if what == "page":
        return "GET", f"/web/inquiries/{draw(ids)}", [("X-Signed-In", b"1")], b"", what
    if what == "reply":
        return (
            "POST",
            f"/web/inquiries/{draw(ids)}/reply",
            [*headers, ("X-Signed-In", b"1")],
            body,
            what,
        )
    if what == "slack-signed":
        stamp = str(int(time.time()))
        text = body.decode("utf-8", "replace")
        headers = [
            ("Content-Type", b"application/x-www-form-urlencoded"),
            ("X-Slack-Request-Timestamp", stamp.encode()),
            (
                "X-Slack-Signature",
                SignatureVerifier(SIGNING_SECRET)
                .generate_signature(timestamp=stamp, body=text)
                .encode(),
            ),
        ]
        return "POST", "/slack/events", headers, text.encode(), what
    return "POST", "/slack/events", headers, body, what


async def inquiry_count(service: Any) -> int:
    async with transaction(service.ctx.readers) as session:
        return int((await session.exec(select(func.count()).select_from(Inquiry))).one())


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(channels={CHANNEL: {"name": "sales-inquiries", "is_member": True}})
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def surfaces(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> Any:
    service = await service_factory(
        settings_with_form_hook(smtp.port, sqlite_url, fake_slack.base_url)
    )
    client = await client_factory(service, background=False)
    signed_in = await client.get(login_link(service.signer, "", "alice"), allow_redirects=False)
    cookie = str(signed_in.cookies[COOKIE].value)
    return service, client, cookie, service.signer.csrf_token(cookie)


@FUZZ
@given(request=requests())
async def test_no_inbound_request_gets_a_5xx_or_stores_on_refusal(
    surfaces: Any, request: tuple[str, str, list[tuple[str, bytes]], bytes, str]
) -> None:
    service, client, cookie, csrf = surfaces
    method, path, headers, body, what = request
    if any(name == "X-Signed-In" for name, _ in headers):
        headers = [(n, v) for n, v in headers if n not in ("X-Signed-In", "Cookie", "X-CSRF-Token")]
        headers += [("Cookie", f"{COOKIE}={cookie}".encode()), ("X-CSRF-Token", csrf.encode())]
    before = await inquiry_count(service)
    status, payload = await raw_request(client, method, path, headers, body)
    assert status < 500, (what, path, status, payload[:300])
    if status >= 400:
        assert await inquiry_count(service) == before, (what, status, payload[:300])
