"""WeCom rendering and escaping: customer text is inert, labels follow the locale, limits hold."""

from __future__ import annotations

import json

import pytest

from cards.actions import Verb, encode_action
from config.schema import LOST_REASONS
from connectors.wecom.escaping import WJ, cut_bytes, inert_line, inert_markdown, inert_plain
from connectors.wecom.render import (
    MARKDOWN_BYTES,
    MAX_BUTTONS,
    MAX_OPTIONS,
    card_state,
    render_group_change,
    render_group_post,
    render_note,
    render_template_card,
    task_id_for,
)
from tests.support.wecom import inquiry_card

HOSTILE = "[click](http://evil.test) <a href='http://evil.test'>x</a> @all <@wangli> **bold** <font color=\"warning\">red</font>"


@pytest.mark.parametrize(
    ("raw", "forbidden"),
    [
        ("[click](http://evil.test)", "]("),
        ("<a href='http://evil.test'>x</a>", "<a"),
        ("@all please", "@all"),
        ("<@wangli> look", "<@"),
        ("**bold**", "**"),
        ('<font color="warning">red</font>', "<font"),
        ("# heading", "# "),
        ("`code`", "`c"),
    ],
)
def test_inert_markdown_breaks_every_construct(raw: str, forbidden: str) -> None:
    out = inert_markdown(raw)
    assert forbidden not in out
    assert out.replace(WJ, "") == raw  # reads exactly as typed


def test_inert_plain_breaks_mentions_and_tags_only() -> None:
    assert inert_plain("a <b> @all") == f"a <{WJ}b> @{WJ}all"
    assert inert_plain("line1\r\nline2\x07") == "line1\nline2"
    assert "\n" not in inert_line("one\ntwo")


def test_cut_bytes_never_splits_a_character() -> None:
    value = "询" * 1000  # 3 bytes each
    out = cut_bytes(value, 2048)
    assert len(out.encode()) <= 2048
    assert out.endswith("…")


def test_template_card_zh_cn_labels_and_our_action_keys() -> None:
    card = inquiry_card()
    tc = render_template_card(card, locale="zh-CN", task_id="cd-1042-x")
    assert tc["card_type"] == "button_interaction"
    assert tc["task_id"] == "cd-1042-x"
    labels = [b["text"] for b in tc["button_list"]]
    assert labels[0] == "认领"
    assert "回复" in labels
    keys = [b.get("key") for b in tc["button_list"] if b["type"] == 0]
    assert encode_action(Verb.CLAIM, 1042) in keys
    assert encode_action(Verb.STATUS, 1042) in keys
    assert any(k and k.startswith("cd1:snooze:1042=") for k in keys)
    assert tc["button_selection"]["question_key"] == encode_action(Verb.STATUS, 1042)
    assert "selected_id" not in tc["button_selection"]  # pressing Status alone picks nothing
    assert tc["main_title"]["desc"] == "新询盘"


def test_template_card_english_locale() -> None:
    tc = render_template_card(inquiry_card(locale="en"), locale="en", task_id="t")
    assert tc["button_list"][0]["text"] == "Claim"


def test_template_card_limits_and_inert_customer_text() -> None:
    card = inquiry_card(subject=HOSTILE * 3, snippet=HOSTILE * 20)
    tc = render_template_card(card, locale="zh-CN", task_id="t")
    assert len(tc["main_title"]["title"]) <= 26
    assert len(tc["sub_title_text"]) <= 112
    assert len(tc["horizontal_content_list"]) <= 6
    assert all(
        len(i["keyname"]) <= 5 and len(i["value"]) <= 26 for i in tc["horizontal_content_list"]
    )
    assert len(tc["button_list"]) <= MAX_BUTTONS
    assert all(len(b["text"]) <= 10 for b in tc["button_list"])
    blob = json.dumps(tc, ensure_ascii=False)
    assert "@all" not in blob and "<@" not in blob and "<a " not in blob


def test_group_post_is_inert_capped_and_links_our_page() -> None:
    card = inquiry_card(subject=HOSTILE, snippet=HOSTILE * 100)
    md = render_group_post(card, locale="zh-CN")
    assert len(md.encode()) <= MARKDOWN_BYTES
    for forbidden in ("](http://evil", "<a", "@all", "<@", "<font"):
        assert forbidden not in md
    assert "[查看](http://claimdesk.test/web/inquiries/1042)" in md


def test_group_change_line_names_the_new_owner() -> None:
    card = inquiry_card(status="claimed", owner="王丽", version=2)
    line = render_group_change(card, locale="zh-CN", owner_changed=True)
    assert "已认领: 王丽" in line
    assert card_state(card, "zh-CN") == {"status": "claimed", "owner": "王丽"}
    assert card_state(inquiry_card(), "zh-CN") == {"status": "new", "owner": ""}


def test_note_keeps_only_our_mentions_live() -> None:
    md = render_note("<@boss> @all nudge", ("wangli", "bad id!"))
    assert md.endswith("<@wangli>")
    assert "<@boss>" not in md and "@all" not in md and "bad id" not in md


def test_task_ids_are_valid_and_unique() -> None:
    card = inquiry_card()
    a, b = task_id_for(card, "k1"), task_id_for(card, "k2")
    assert a != b and a == task_id_for(card, "k1")
    assert len(a.encode()) <= 128
    assert all(c.isalnum() or c in "_-@" for c in a)


def _status_selection(lost_reasons: tuple[str, ...]) -> list[tuple[str, str]]:
    from dataclasses import replace as _replace

    from cards.inquiry_card import build_inquiry_card
    from tests.support.wecom import NOW, inquiry_view

    view = _replace(inquiry_view(status="claimed", owner="Alice"), lost_reasons=lost_reasons)
    card = build_inquiry_card(view, now=NOW, locale="en")
    selection = render_template_card(card, locale="en", task_id="t-1")["button_selection"]
    return [(o["id"], o["text"]) for o in selection["option_list"]]


def test_the_status_drop_down_offers_each_listed_lost_reason() -> None:
    options = _status_selection(("price", "MOQ", "other"))
    ids = [i for i, _ in options]
    assert ("lost|price", "Lost: Price") in options and ("lost|MOQ", "Lost: MOQ") in options
    assert "lost|?" in ids and "won|?" in ids  # these need words: asked on the inquiry page
    assert "lost" not in ids and len(options) <= MAX_OPTIONS


def test_reasons_that_do_not_fit_keep_the_first_ones_and_one_that_asks() -> None:
    options = _status_selection(tuple(f"reason {i}" for i in range(12)))
    ids = [i for i, _ in options]
    assert len(options) == MAX_OPTIONS
    assert {"waiting", "follow_up", "won|?", "spam", "closed"} <= set(ids)  # every status
    listed = [i for i in ids if i.startswith("lost|") and i != "lost|?"]
    assert listed == [f"lost|reason {i}" for i in range(len(listed))] and listed
    assert ("lost|?", "Lost: …") in options  # the rest: the application asks for a reason
    # the default list (six reasons, "other" last): "other" is that choice already
    default = [i for i, _ in _status_selection(LOST_REASONS)]
    assert len(default) == MAX_OPTIONS and default.count("lost|?") == 1
    assert "lost|price" in default
