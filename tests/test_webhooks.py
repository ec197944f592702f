"""Webhook intake: authentication, limits and validation refuse bad input and store nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from connectors.webhooks import sign_body
from tests.conftest import API_TOKEN, WEBHOOK_SECRET
from tests.test_flow_end_to_end import sample_form

GOOD = {
    "email": "li@buyer.cn",
    "name": "Li Wei",
    "subject": "询价：集装箱",
    "message": "请报价 2 个 40 尺集装箱的 LED 面板",
    "country": "CN",
}


async def count_inquiries(client: Any) -> int:
    response = await client.get(
        "/api/inquiries?limit=500", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status == 200
    return len((await response.json())["inquiries"])


async def signed_post(
    http: Any, raw: bytes, *, signed: bytes | None = None, content_type: str = "application/json"
) -> Any:
    """POST ``raw`` to the website webhook, signed over ``signed`` (default: the same bytes)."""
    return await http.post(
        "/webhooks/website",
        data=raw,
        headers={
            "Content-Type": content_type,
            "X-Claimdesk-Signature": sign_body(
                WEBHOOK_SECRET, signed if signed is not None else raw
            ),
        },
    )


@pytest.fixture
async def http(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> Any:
    service = await service_factory(make_settings(sqlite_url))
    return await client_factory(service)


async def test_signed_json_is_accepted_and_routed(http: Any) -> None:
    raw = json.dumps(GOOD).encode()
    response = await signed_post(http, raw)
    assert response.status == 202
    number = (await response.json())["inquiry"]
    detail = await (
        await http.get(f"/api/inquiries/{number}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    ).json()
    # Chinese text: the "chinese" rule sends it to team asia; language detected, contact stored
    assert detail["team"] == "asia"
    assert detail["language"] == "zh"
    assert detail["contact"]["email"] == "li@buyer.cn"
    assert detail["subject"] == "询价：集装箱"
    assert (detail["country"], detail["country_source"]) == ("CN", "form")
    assert detail["rule"] == "chinese"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Claimdesk-Signature": "sha256=" + "0" * 64},
        {"X-Claimdesk-Signature": sign_body("wrong-secret", json.dumps(GOOD).encode())},
        {
            "X-Claimdesk-Token": WEBHOOK_SECRET
        },  # a token is not accepted where a signature is configured
    ],
)
async def test_bad_signature_is_401_and_stores_nothing(http: Any, headers: dict[str, str]) -> None:
    raw = json.dumps(GOOD).encode()
    response = await http.post(
        "/webhooks/website", data=raw, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status == 401
    assert await count_inquiries(http) == 0


async def test_signature_covers_the_exact_body(http: Any) -> None:
    raw = json.dumps(GOOD).encode()
    tampered = raw.replace(b"li@buyer.cn", b"evil@attacker.example")
    response = await signed_post(http, tampered, signed=raw)
    assert response.status == 401
    assert await count_inquiries(http) == 0


async def test_token_webhook_with_form_encoding_and_nested_mapping(http: Any) -> None:
    # the "shop" webhook maps buyer.email etc.; nested mapping needs JSON, so a flat form misses fields
    body = {
        "buyer": {"email": "anna@shop.example", "name": "Anna", "country": "DE"},
        "title": "Wholesale",
        "body": "MOQ?",
    }
    ok = await http.post(
        "/webhooks/shop", json=body, headers={"Authorization": "Bearer shop-token"}
    )
    assert ok.status == 202
    flat = await http.post(
        "/webhooks/shop",
        data=urlencode({"title": "x", "body": "y"}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Claimdesk-Token": "shop-token",
        },
    )
    assert flat.status == 422
    assert (await flat.json())["fields"] == {
        "buyer.email": "required: the customer's email address"
    }
    assert await count_inquiries(http) == 1


async def test_form_encoded_contact_form(http: Any) -> None:
    raw = urlencode(
        {"email": "p@x.example", "name": "Pablo", "message": "Hola, precio por favor"}
    ).encode()
    response = await signed_post(http, raw, content_type="application/x-www-form-urlencoded")
    assert response.status == 202


async def test_invalid_fields_are_named(http: Any) -> None:
    raw = json.dumps({"email": "not-an-email", "name": "X"}).encode()
    response = await signed_post(http, raw)
    assert response.status == 422
    body = await response.json()
    assert body["fields"] == {
        "email": "not an email address",
        "message": "required: the inquiry text (or a subject)",
    }
    assert await count_inquiries(http) == 0


async def test_too_large_is_413(http: Any) -> None:
    raw = json.dumps({**GOOD, "message": "x" * 300_000}).encode()
    response = await signed_post(http, raw)
    assert response.status == 413
    assert await count_inquiries(http) == 0


async def test_bad_json_and_unknown_webhook(http: Any) -> None:
    raw = b"{not json"
    response = await signed_post(http, raw)
    assert response.status == 400
    assert (await http.post("/webhooks/nope", json=GOOD)).status == 404


async def test_same_body_without_key_and_concurrent_duplicates_give_one_inquiry(http: Any) -> None:
    raw = json.dumps(GOOD).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
    }
    responses = await asyncio.gather(
        *(http.post("/webhooks/website", data=raw, headers=headers) for _ in range(8))
    )
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {202}
    assert len({b["inquiry"] for b in bodies}) == 1
    assert sum(1 for b in bodies if not b["duplicate"]) == 1
    assert await count_inquiries(http) == 1


async def test_api_needs_a_token(http: Any) -> None:
    assert (await http.get("/api/inquiries")).status == 401
    assert (
        await http.get("/api/inquiries", headers={"Authorization": "Bearer wrong"})
    ).status == 401
    assert (
        await http.get(
            "/api/inquiries?status=bogus", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
    ).status == 400


async def test_health_and_metrics(http: Any) -> None:
    health = await http.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
    raw = json.dumps(GOOD).encode()
    await signed_post(http, raw)
    metrics = await (await http.get("/metrics")).text()
    assert 'claimdesk_inquiries_total{source_kind="webhook",team="asia"} 1.0' in metrics
    assert "claimdesk_outbox_pending" in metrics


async def test_web_actions_need_session_and_csrf(http: Any, sqlite_url: str) -> None:
    assert (await http.post("/web/actions", json={"action": "cd1:claim:1001"})).status == 401
    assert (await http.get("/web/teams/sales")).status == 401
    assert (await http.get("/web/login?token=forged")).status == 401


async def test_signed_in_action_without_csrf_is_refused(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    from connectors.web.auth import login_link

    service = await service_factory(make_settings(sqlite_url))
    http = await client_factory(service)
    receipt = await service.intake(sample_form())
    assert (
        await http.get(login_link(service.signer, "", "alice"), allow_redirects=False)
    ).status == 302
    refused = await http.post("/web/actions", json={"action": f"cd1:claim:{receipt.inquiry_id}"})
    assert refused.status == 403
    forged = await http.post(
        "/web/actions",
        json={"action": f"cd1:claim:{receipt.inquiry_id}"},
        headers={"X-CSRF-Token": "00" * 32},
    )
    assert forged.status == 403
    detail = await (
        await http.get(
            f"/api/inquiries/{receipt.inquiry_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
    ).json()
    assert detail["status"] == "new"
