"""The whole story over HTTP, on SQLite and on a real PostgreSQL, with a real SMTP server:
webhook -> card -> claim (and a losing second claim) -> templated reply delivered by SMTP ->
replied with first-response time -> won with a reason -> timeline in the API."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from bot.app import Service
from connectors.web.auth import login_link
from connectors.webhooks import sign_body
from tests.conftest import API_TOKEN, WEBHOOK_SECRET

FORM = {
    "email": "Maria.Lopez@Buyer.example",
    "name": "Maria Lopez",
    "company": "Lopez Importaciones",
    "country": "ES",
    "subject": "Quotation for 2 containers of LED panels",
    "message": "Hello, please quote 2x40HQ of 600x600 LED panels, delivery to Valencia.",
}


async def post_webhook(
    client: Any,
    body: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    all_headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Signature": sign_body(secret, raw),
    }
    all_headers.update(headers or {})
    return await client.post("/webhooks/website", data=raw, headers=all_headers)


async def sign_in(client: Any, service: Service, rep: str) -> str:
    """Follow the rep's login link; returns the CSRF token of the team page."""
    link = login_link(service.signer, "", rep)
    response = await client.get(link, allow_redirects=False)
    assert response.status == 302
    page = await client.get("/web/teams/sales")
    assert page.status == 200
    html = await page.text()
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert match
    return match.group(1)


async def act(
    client: Any, csrf: str, action: str, value: str = "", reason: str = ""
) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/web/actions",
        json={"action": action, "value": value, "reason": reason},
        headers={"X-CSRF-Token": csrf},
    )
    return response.status, await response.json()


async def api(client: Any, path: str) -> Any:
    response = await client.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_webhook_to_claimed_replied_won(
    db_url: str, make_settings: Any, service_factory: Any, client_factory: Any, smtp: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    alice_http = await client_factory(service)
    bob_http = await client_factory(service)

    # intake: accepted, idempotent
    response = await post_webhook(alice_http, FORM, headers={"Idempotency-Key": "form-1"})
    assert response.status == 202
    number = (await response.json())["inquiry"]
    assert number > 1000
    again = await post_webhook(alice_http, FORM, headers={"Idempotency-Key": "form-1"})
    assert again.status == 202
    assert (await again.json()) == {"inquiry": number, "duplicate": True, "status": "accepted"}

    # the card is in the team channel of the web inbox
    csrf_alice = await sign_in(alice_http, service, "alice")
    csrf_bob = await sign_in(bob_http, service, "bob")
    page = await (await alice_http.get("/web/teams/sales")).text()
    assert f'id="card-{number}"' in page
    assert "Quotation for 2 containers" in page
    assert "Lopez Importaciones" in page
    assert "🇪🇸" in page

    # claim: alice wins, bob is told who won
    status, body = await act(alice_http, csrf_alice, f"cd1:claim:{number}")
    assert (status, body["ok"]) == (200, True)
    status, body = await act(bob_http, csrf_bob, f"cd1:claim:{number}")
    assert status == 409
    assert body["code"] == "lost_race"
    assert body["message"].startswith("Alice claimed it")

    # bob may not set the status of alice's inquiry
    status, body = await act(bob_http, csrf_bob, f"cd1:status:{number}", "won", "mine")
    assert status == 403

    # reply: the editor is pre-filled from the template in the customer's language
    reply_page = await (await alice_http.get(f"/web/inquiries/{number}/reply")).text()
    assert "Dear Maria Lopez" in reply_page  # English text -> English template
    assert "Quotation for 2 containers" in reply_page
    form_csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', reply_page)
    assert form_csrf
    send = await alice_http.post(
        f"/web/inquiries/{number}/reply",
        data={
            "csrf": form_csrf.group(1),
            "subject": f"Re: LED panels [#{number}]",
            "body": "Dear Maria,\nour offer follows.\nAlice",
            "template": "en/thank_you",
        },
    )
    assert send.status == 200, await send.text()
    assert (await send.json())["ok"] is True

    await service.worker.drain()
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ["maria.lopez@buyer.example"]
    msg = mail.message
    assert msg["Subject"] == f"Re: LED panels [#{number}]"
    assert msg["From"].addresses[0].addr_spec == "sales@seller.test"
    assert msg["Reply-To"].addresses[0].addr_spec == "sales@seller.test"
    assert re.fullmatch(
        rf"<claimdesk\.{number}\.[0-9a-f]{{16}}@seller\.test>", msg["Message-ID"].strip()
    )
    assert "our offer follows" in msg.get_content()
    assert msg["Auto-Submitted"] == "no"  # written by a person

    detail = await api(alice_http, f"/api/inquiries/{number}")
    assert detail["status"] == "replied"
    assert detail["assignee"] == "alice"
    assert detail["first_response_seconds"] is not None
    assert detail["first_response_seconds"] >= 0
    outbound = [m for m in detail["messages"] if m["direction"] == "out"]
    assert outbound[0]["message_id"] == msg["Message-ID"].strip()
    assert outbound[0]["delivery"] == "sent"

    # won needs a reason; with one it closes
    status, body = await act(alice_http, csrf_alice, f"cd1:status:{number}", "won")
    assert status == 422
    assert "reason" in body["message"]
    status, body = await act(
        alice_http, csrf_alice, f"cd1:status:{number}", "won", "Signed PI for 2x40HQ"
    )
    assert (status, body["ok"]) == (200, True)

    detail = await api(alice_http, f"/api/inquiries/{number}")
    assert detail["status"] == "won"
    assert detail["outcome_reason"] == "Signed PI for 2x40HQ"
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["received", "claimed", "replied", "reply_delivered", "status"]
    assert detail["timeline"][1]["actor"] == "alice"

    # the inquiry page shows the timeline and the conversation
    inquiry_page = await (await alice_http.get(f"/web/inquiries/{number}")).text()
    assert "Signed PI for 2x40HQ" in inquiry_page
    assert "our offer follows" in inquiry_page
    assert 'class="team-link current" href="/web/teams/sales"' in inquiry_page  # top bar

    listing = await api(alice_http, "/api/inquiries?status=won&team=sales")
    assert [i["id"] for i in listing["inquiries"]] == [number]


async def test_snooze_and_release(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url))
    http = await client_factory(service)
    number = (await (await post_webhook(http, FORM)).json())["inquiry"]
    csrf = await sign_in(http, service, "alice")
    assert (await act(http, csrf, f"cd1:claim:{number}"))[0] == 200
    status, body = await act(http, csrf, f"cd1:snooze:{number}", "4h")
    assert status == 200
    assert "snoozed until" in body["message"]
    detail = await api(http, f"/api/inquiries/{number}")
    assert detail["snoozed_until"] is not None
    status, _ = await act(http, csrf, f"cd1:release:{number}")
    assert status == 200
    detail = await api(http, f"/api/inquiries/{number}")
    assert (detail["status"], detail["assignee"]) == ("new", None)
    assert [e["kind"] for e in detail["timeline"]] == ["received", "claimed", "snoozed", "released"]


async def test_claim_race_has_exactly_one_winner(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    from bot.usecases.card_actions import perform
    from cards.actions import Action, Verb

    service = await service_factory(make_settings(db_url))
    receipt = await service.intake(sample_form())
    reps = [f"rep{i}" for i in range(20)]
    outcomes = await asyncio.gather(
        *(perform(service.ctx, Action(receipt.inquiry_id, Verb.CLAIM, "web", rep)) for rep in reps)
    )
    winners = [o for o in outcomes if o.ok]
    losers = [o for o in outcomes if not o.ok]
    assert len(winners) == 1
    assert len(losers) == 19
    assert all(o.code == "lost_race" and "claimed it" in o.message for o in losers)
    winner_index = outcomes.index(winners[0])
    assert all(o.message.startswith(f"Rep {winner_index} claimed it") for o in losers)


def sample_form() -> Any:
    from connectors.webhooks import InboundForm

    return InboundForm(
        webhook="website",
        email="x@buyer.example",
        name="X",
        subject="Need price",
        message="Price for 100 pcs?",
        dedupe_key="k-1",
    )
