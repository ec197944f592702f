"""Block Kit rendering: escaping of customer text, controls, modal shapes (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cards.escalation_card import build_escalation_card
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Option
from cards.status_choices import split_status_value
from connectors.platform import ReplyDraftView
from connectors.slack.events import parse_block_actions, parse_reply_submission
from connectors.slack.render import (
    body_block_id,
    fallback_text,
    render_card,
    reply_modal,
)
from tests.support.slack import fixture

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
EVIL = "<!channel> <http://x|click> @here *bold* <@U123>"


def _card(**overrides: object) -> object:
    data: dict[str, object] = dict(
        number=1042,
        version=3,
        team="sales",
        status="new",
        priority="high",
        subject=EVIL,
        snippet=f"Hi\n{EVIL}\n> quoted",
        source="website",
        contact_name="@everyone Maria",
        contact_email="m@buyer.example",
        company="<b>ACME</b>",
        country="ES",
        language="en",
        received_at=NOW,
        link_url="http://claimdesk.test/web/inquiries/1042",
    )
    data.update(overrides)
    return build_inquiry_card(InquiryView(**data), now=NOW, locale="en")  # type: ignore[arg-type]


def _mrkdwn_texts(blocks: list[dict[str, object]]) -> list[str]:
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(str(node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return out


def test_customer_text_cannot_ping_link_or_format() -> None:
    card = _card()
    blocks = render_card(card, locale="en")  # type: ignore[arg-type]
    texts = "\n".join(_mrkdwn_texts(blocks))
    assert (
        "<!channel>" not in texts
        and "<http" not in texts
        and "<@U123>" not in texts
        and "<b>" not in texts
    )
    assert "&lt;!channel&gt; &lt;http://x|click&gt;" in texts
    assert "@here" not in texts and "@everyone" not in texts  # broken by an invisible joiner
    assert "@\u2060here" in texts
    # the customer's "> quoted" line does not become a quote: only our own prefix quotes
    assert "&gt; quoted" in texts
    fallback = fallback_text(card, "en")  # type: ignore[arg-type]
    assert "<" not in fallback and "@here" not in fallback


def test_controls_for_a_new_card() -> None:
    blocks = render_card(_card(), locale="en")  # type: ignore[arg-type]
    actions = next(b for b in blocks if b["type"] == "actions")
    kinds = {e["action_id"]: e for e in actions["elements"]}
    assert (
        kinds["cd1:claim:1042"]["type"] == "button"
        and kinds["cd1:claim:1042"]["style"] == "primary"
    )
    assert kinds["cd1:status:1042"]["type"] == "static_select"
    assert {o["value"] for o in kinds["cd1:status:1042"]["options"]} >= {"spam"}
    assert (
        kinds["cd1:snooze:1042"]["type"] == "overflow"
        and 2 <= len(kinds["cd1:snooze:1042"]["options"]) <= 5
    )
    assert kinds["cd1:open:1042"]["url"] == "http://claimdesk.test/web/inquiries/1042"
    assert kinds["cd1:reassign:1042"]["type"] == "users_select"
    assert all(len(e.get("text", {}).get("text", "")) <= 75 for e in actions["elements"])


def test_closed_card_has_no_claim_or_reassign() -> None:
    blocks = render_card(_card(status="won", outcome_reason="PI signed"), locale="en")  # type: ignore[arg-type]
    ids = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert "cd1:claim:1042" not in ids and "cd1:reassign:1042" not in ids


def test_reply_modal_shape_and_limits() -> None:
    draft = ReplyDraftView(
        1042,
        "m@buyer.example",
        "Re: <!channel> [#1042]",
        "Dear Maria,\n",
        "en/thank_you",
        (
            ("en/thank_you", "Thank you (en)"),
            ("en/quotation", "Quotation (en)"),
        ),
        error="",
    )
    view = reply_modal(draft, locale="en")
    assert view["type"] == "modal" and len(view["title"]["text"]) <= 24
    assert json.loads(view["private_metadata"]) == {"inquiry": 1042, "template": "en/thank_you"}
    ids = [b.get("block_id") for b in view["blocks"]]
    assert body_block_id("en/thank_you") in ids and "subject" in ids
    subject = next(b for b in view["blocks"] if b.get("block_id") == "subject")
    assert (
        subject["element"]["initial_value"] == "Re: <!channel> [#1042]"
    )  # an input value, not mrkdwn


def test_fixture_payloads_parse() -> None:
    button = parse_block_actions(fixture("block_actions_button.json", action_id="cd1:claim:7"))
    assert [(c.action_id, c.user, c.channel, c.message_ts) for c in button] == [
        ("cd1:claim:7", "UALICE", "CSALES", "1700000000.000100")
    ]
    select = parse_block_actions(
        fixture("block_actions_static_select.json", action_id="cd1:status:7")
    )
    assert select[0].value == "waiting"
    overflow = parse_block_actions(fixture("block_actions_overflow.json", action_id="cd1:snooze:7"))
    assert overflow[0].value == "4h"
    assert button[0].dedupe_key != overflow[0].dedupe_key
    submission = parse_reply_submission(fixture("view_submission.json"))
    assert (submission.inquiry_id, submission.template, submission.body_block) == (
        1001,
        "en/thank_you",
        "body-en/thank_you",
    )
    assert submission.subject.startswith("Re: Quotation") and "our offer follows" in submission.body


def _status_select(card: object) -> dict[str, object]:
    blocks = render_card(card, locale="en")  # type: ignore[arg-type]
    actions = next(b for b in blocks if b["type"] == "actions")
    return next(e for e in actions["elements"] if e["action_id"] == "cd1:status:1042")


def test_status_select_carries_the_teams_lost_reasons() -> None:
    card = _card(status="claimed", lost_reasons=("price", "MOQ", "other"))
    options = [(o["value"], o["text"]["text"]) for o in _status_select(card)["options"]]  # type: ignore[attr-defined]
    values = dict(options)
    assert "waiting" in values and "follow_up" in values
    assert values["won|?"] == "Won" and "lost" not in values and "won" not in values
    lost = [o for o in options if o[0].startswith("lost|")]
    assert lost == [
        ("lost|price", "Lost: Price"),
        ("lost|MOQ", "Lost: MOQ"),
        ("lost|?", "Lost: Other"),
    ]
    # without a list (an older card): won and lost ask for words
    bare = _status_select(_card(status="claimed"))
    assert {"won|?", "lost|?"} <= {o["value"] for o in bare["options"]}  # type: ignore[attr-defined]
    assert split_status_value("lost|price") == ("lost", "price", False)
    assert split_status_value("won|?") == ("won", "", True)
    assert split_status_value("waiting") == ("waiting", "", False)


def test_every_card_has_reassign_once_while_open() -> None:
    def reassigns(card: object) -> list[str]:
        blocks = render_card(card, locale="en")  # type: ignore[arg-type]
        actions = next(b for b in blocks if b["type"] == "actions")
        ids = [e["action_id"] for e in actions["elements"]]
        assert len(ids) == len(set(ids)), ids  # Slack refuses repeated action ids in a block
        return [e["type"] for e in actions["elements"] if e["action_id"] == "cd1:reassign:1042"]

    # the channel card, new and claimed: the user picker
    assert reassigns(_card()) == ["users_select"]
    assert reassigns(_card(status="claimed", owner_name="Alice")) == ["users_select"]
    # the escalation DM brings the team's members as its own Reassign: only that one
    data: dict[str, object] = dict(
        number=1042,
        version=3,
        team="sales",
        status="new",
        priority="normal",
        subject="s",
        snippet="",
        source="website",
        contact_name="M",
        contact_email="m@buyer.example",
        company="",
        country="ES",
        language="en",
        received_at=NOW,
    )
    dm = build_escalation_card(
        InquiryView(**data),  # type: ignore[arg-type]
        now=NOW,
        locale="en",
        headline="Escalated",
        members=(Option("Bob", "bob"),),
    )
    assert reassigns(dm) == ["static_select"]
