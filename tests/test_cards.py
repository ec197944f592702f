"""Cards: what a card shows in each state, action ids, locales, and escaping of customer text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards.actions import BadActionId, Verb, decode_action, encode_action
from cards.escaping import ZWJ, escape_markdown
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Button, Select
from cards.strings import STRINGS
from connectors.slack.escaping import escape_slack
from connectors.web.render import render_card_html

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def view(**kw: object) -> InquiryView:
    base: dict[str, object] = dict(
        number=1042,
        version=3,
        team="sales",
        status="new",
        priority="high",
        subject="LED panels",
        snippet="Please quote",
        source="website",
        contact_name="Maria",
        contact_email="m@x.es",
        company="Lopez SL",
        country="ES",
        language="es",
        received_at=NOW - timedelta(minutes=20),
        claim_due_at=NOW - timedelta(minutes=5),
        link_url="http://c.test/web/inquiries/1042",
    )
    base.update(kw)
    return InquiryView(**base)  # type: ignore[arg-type]


def labels(card: object) -> list[str]:
    return [c.label if isinstance(c, Button) else c.placeholder for c in card.actions]  # type: ignore[attr-defined]


def test_new_card_offers_claim_and_shows_overdue_clock() -> None:
    card = build_inquiry_card(view(), now=NOW, locale="en")
    assert card.title == "#1042 LED panels"
    assert card.badge.label == "New"
    assert labels(card) == ["Claim", "Reply", "Set status", "Snooze", "Open"]
    assert "overdue by 5 min" in card.context
    fields = {f.label: f.value for f in card.fields}
    assert fields["Customer"] == "Maria <m@x.es> · Lopez SL · 🇪🇸 ES"
    assert fields["Their time"] == "10:00 (Mon)"  # Madrid in November is UTC+1
    assert fields["Owner"] == "Unclaimed"


def test_claimed_card_in_chinese() -> None:
    card = build_inquiry_card(
        view(status="claimed", owner_name="李雷", reply_due_at=NOW + timedelta(minutes=30)),
        now=NOW,
        locale="zh-CN",
    )
    assert card.badge.label == "已认领"
    assert labels(card)[:2] == ["回复", "释放"]
    assert "回复截止30 分钟后" in card.context
    status = next(c for c in card.actions if isinstance(c, Select) and not c.overflow)
    assert [o.value for o in status.options] == [
        "waiting",
        "follow_up",
        "won",
        "lost",
        "spam",
        "closed",
    ]


def test_closed_card_offers_only_reopen() -> None:
    card = build_inquiry_card(view(status="won", outcome_reason="PI signed"), now=NOW, locale="en")
    selects = [c for c in card.actions if isinstance(c, Select)]
    assert [[o.value for o in s.options] for s in selects] == [["claimed"]]
    assert {f.label: f.value for f in card.fields}["Reason"] == "PI signed"


def test_locales_have_the_same_keys() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["zh-CN"])


@given(st.sampled_from(list(Verb)), st.integers(min_value=1, max_value=10**9))
def test_action_ids_round_trip(verb: Verb, number: int) -> None:
    assert decode_action(encode_action(verb, number)) == (verb, number)


@pytest.mark.parametrize(
    "bad", ["", "claim:1", "cd1:claim", "cd1:explode:1", "cd1:claim:abc", "xx:claim:1"]
)
def test_foreign_action_ids_are_refused(bad: str) -> None:
    with pytest.raises(BadActionId):
        decode_action(bad)


def test_web_render_escapes_customer_text() -> None:
    card = build_inquiry_card(
        view(subject="<script>alert(1)</script>", snippet='"><img src=x onerror=alert(1)>'),
        now=NOW,
        locale="en",
    )
    html = render_card_html(card)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "text", ["<!channel> <http://x|click>", "@here look", "hi @channel", "<@U123> *bold*"]
)
def test_slack_escaping_disarms_mentions_and_links(text: str) -> None:
    out = escape_slack(text)
    assert "<" not in out and ">" not in out
    assert "@here" not in out and "@channel" not in out
    assert "*bold*" not in out


def test_markdown_escaping_breaks_mentions_and_markup() -> None:
    out = escape_markdown("@13800000000 [click](http://evil) **x**")
    assert "@1" not in out
    assert "[click](http" not in out
    assert "**" not in out


@pytest.mark.parametrize(
    "garbled",
    [
        "cd1:claim:１２",
        "cd1:claim: 12",
        "cd1:claim:1_2",
        "cd1:claim:-3",
        "cd1:claim:0",
        "cd1:claim:" + "9" * 30,
        "cd1:claim:2147483648",
    ],
)
def test_garbled_inquiry_numbers_in_action_ids_are_refused(garbled: str) -> None:
    # int() alone takes all of these; the database cannot hold the large ones (a 500 there)
    with pytest.raises(BadActionId):
        decode_action(garbled)


@pytest.mark.parametrize(
    "text",
    [
        "@HERE look",
        "@Here look",
        "hi @CHANNEL",
        "hi @Channel",
        "@EveryOne read this",
        "<!Channel> <!HERE> <!EVERYONE>",
        "mixed @hErE and @cHaNnEl",
    ],
)
def test_slack_escaping_is_case_insensitive(text: str) -> None:
    """Slack treats ``@HERE`` like ``@here``: any case must be broken."""
    out = escape_slack(text)
    lowered = out.lower()
    assert "<" not in out and ">" not in out
    for word in ("@here", "@channel", "@everyone", "<!here", "<!channel", "<!everyone"):
        assert word not in lowered, (word, out)
    # the words stay readable: only an invisible joiner was added
    assert out.replace(ZWJ, "").lower() == (text.replace("<", "&lt;").replace(">", "&gt;").lower())
