"""DingTalk rendering: every card value a string, customer text inert, labels in the locale."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.strings import text
from connectors.dingtalk.escaping import WJ, inert, pings_anyone
from connectors.dingtalk.render import markdown_note, render_card, render_notice

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def view(**changes: object) -> InquiryView:
    base: dict[str, object] = {
        "number": 1042,
        "version": 3,
        "team": "sales",
        "status": "new",
        "priority": "high",
        "subject": "**Urgent** <font color=red>40HQ</font> [click](http://evil.test) @所有人",
        "snippet": "# Hello\n- item\n@all please call me ＠ALL @All",
        "source": "website",
        "contact_name": "Ana",
        "contact_email": "ana@buyer.test",
        "company": "Buyer SA",
        "country": "BR",
        "language": "pt",
        "received_at": NOW - timedelta(minutes=5),
        "claim_due_at": NOW + timedelta(minutes=10),
        "link_url": "http://claimdesk.test/web/inquiries/1042",
    }
    base.update(changes)
    return InquiryView(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        "@所有人 开会",
        "@all hi",
        "@ALL hi",
        "@All hi",
        "＠所有人 全角",
        "＠all",
        "mail me a@b.test",
        "@manager4220",
    ],
)
def test_mentions_never_live(raw: str) -> None:
    assert pings_anyone(raw)
    out = inert(raw)
    assert not pings_anyone(out)
    assert out.replace(WJ, "").replace("＠", "＠") == raw  # only invisible joiners added


@pytest.mark.parametrize(
    ("raw", "forbidden"),
    [
        ("**bold**", "**"),
        ("<font color=red>x</font>", "<font"),
        ("[click](http://evil.test)", "]("),
        ("http://evil.test/path", "://"),
        ("www.evil.test", "www."),
        ("`code`", "`"),
        ("> quote", ">"),
        ("a | b", "|"),
        ("~~strike~~", "~~"),
    ],
)
def test_markdown_links_and_font_tags_are_inert(raw: str, forbidden: str) -> None:
    assert forbidden not in inert(raw)


def test_list_markers_lose_their_meaning() -> None:
    out = inert("- item\n1. first\n+ plus\n# heading\n  ## deeper")
    assert all(line.lstrip(" ").startswith(WJ) for line in out.split("\n"))
    assert inert("order #1042") == "order #1042"  # a mid-line # stays as typed


def test_card_params_are_strings_and_inert() -> None:
    card = build_inquiry_card(view(), now=NOW, locale="zh-CN")
    params = render_card(card, locale="zh-CN")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    assert all(len(v.encode("utf-8")) <= 1000 for v in params.values())
    for key in ("title", "snippet", "fields_md", "lastMessage"):
        assert not pings_anyone(params[key]), key
        assert "<font" not in params[key]
        assert "](" not in params[key]
    assert params["status"] == "new"
    assert params["status_label"] == text("zh-CN", "status.new")
    assert params["show_claim"] == "true" and params["show_release"] == "false"
    assert params["btn_claim"] == "认领"
    options = json.loads(params["status_options"])
    assert {"text", "value"} <= set(options[0])
    assert params["open_url"] == "http://claimdesk.test/web/inquiries/1042"


def test_claimed_card_shows_owner_and_release_in_english() -> None:
    card = build_inquiry_card(
        view(status="claimed", owner_name="Alice", claimed_at=NOW), now=NOW, locale="en"
    )
    params = render_card(card, locale="en")
    assert params["show_claim"] == "false" and params["show_release"] == "true"
    assert "Alice" in params["fields_md"]
    assert params["btn_reply"] == "Reply"


def test_note_mentions_are_live_only_for_the_reps_given() -> None:
    note = markdown_note("#1042 waiting @所有人", ("manager4220",))
    assert note.endswith("@manager4220")
    assert "@" + WJ + "所有人" in note


def test_notice_is_inert() -> None:
    assert not pings_anyone(render_notice("Alice @all claimed it")["notice"])


def test_every_rendered_variable_is_documented_in_the_template() -> None:
    import re
    from pathlib import Path

    spec = json.loads(
        (Path(__file__).parent.parent / "connectors" / "dingtalk" / "card_template.json").read_text(
            "utf-8"
        )
    )
    documented = {v["name"] for v in spec["variables"]} | {
        v["name"] for v in spec["privateVariables"]
    }
    card = build_inquiry_card(
        view(status="claimed", owner_name="Alice", outcome_reason="x"), now=NOW, locale="zh-CN"
    )
    for key in render_card(card, locale="zh-CN"):
        if re.fullmatch(r"field\d_(label|value)", key):
            continue
        assert key in documented, key
    assert set(render_notice("x")) <= documented


def test_the_status_select_offers_each_listed_lost_reason() -> None:
    card = build_inquiry_card(
        view(status="claimed", owner_name="Alice", claimed_at=NOW, lost_reasons=("price", "MOQ")),
        now=NOW,
        locale="en",
    )
    options = {
        o["value"]: o["text"] for o in json.loads(render_card(card, locale="en")["status_options"])
    }
    assert options["lost|price"] == "Lost: Price" and options["lost|MOQ"] == "Lost: MOQ"
    assert "lost" not in options and "won|?" in options
