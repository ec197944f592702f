"""Routing rules do what they say: word-boundary keywords, ``unless``, ``continue``, business
hours on the target team's calendar, categories, and a country with the source of the guess."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.loading import settings_from_mapping
from config.schema import Settings
from routing.country import CountryGuess, guess_country
from routing.keywords import find_keywords
from routing.rules import RoutingInput, classify_category, route, shadowed_rules
from tests.conftest import base_config


def settings_with(rules: list[dict[str, Any]], **extra: Any) -> Settings:
    config = base_config()
    config["rules"] = rules
    config.update(extra)
    return settings_from_mapping(config)


def msg(text: str = "", subject: str = "", **kw: Any) -> RoutingInput:
    return RoutingInput(source=kw.pop("source", "website"), subject=subject, text=text,
                        sender=kw.pop("sender", "buyer@example.com"), **kw)  # fmt: skip


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("led", "We called you yesterday", False),
        ("led", "Price for LED panels?", True),
        ("led", "Led-Leuchten gesucht", True),
        ("led", "LEDs and ledgers", True),  # a plural ending is tolerated
        ("led", "ledger", False),  # nothing longer is
        ("box", "boxes", True),
        ("precio", "¿Cuál es el PRECÍO?", True),
        ("café", "cafe machines", True),  # accent-insensitive both ways
        ("strasse", "Hauptstraße 5", False),  # inside a word
        ("strasse", "Straße und Preise", True),
        ("stainless steel", "STAINLESS-steel pipes", True),
        ("stainless steel", "stainless and steel", False),
        ("集装箱", "请报价20尺集装箱", True),
        ("container", "集装箱 container", True),
        ("ｌｅｄ", "led strips", True),  # full-width keyword
        ("контейнер", "Нужен КОНТЕЙНЕР", True),
        ("c++", "c++ developer", True),
    ],
)
def test_keywords_match_on_word_boundaries_case_and_accent_insensitively(
    keyword: str, text: str, hit: bool
) -> None:
    assert bool(find_keywords([keyword], text)) is hit


def test_a_substring_keyword_no_longer_routes_an_unrelated_message() -> None:
    settings = settings_with(
        [{"name": "lighting", "when": {"keywords": ["led"]}, "then": {"team": "asia"}}]
    )
    assert route(settings, msg("We called about your offer")).team == "sales"
    assert route(settings, msg("LED strip quote")).team == "asia"


def test_unless_keeps_a_rule_from_matching() -> None:
    settings = settings_with(
        [
            {
                "name": "germany",
                "when": {"country": ["DE"]},
                "unless": {"keywords": ["test"], "sender_domain": ["seller.test"]},
                "then": {"team": "asia"},
            }
        ]
    )
    assert route(settings, msg("hello", country="DE")).team == "asia"
    blocked = route(settings, msg("just a test", country="DE"))
    assert blocked.team == "sales"
    assert any("unless.keywords: no" in line for line in blocked.explanation)
    assert route(settings, msg("hi", country="DE", sender="x@seller.test")).team == "sales"


def test_continue_applies_and_goes_on_tags_add_up_later_match_decides() -> None:
    settings = settings_with(
        [
            {"name": "vip", "when": {"sender_domain": ["bigco.com"]},
             "then": {"priority": "vip", "tags": ["key-account"], "continue": True}},
            {"name": "bulk", "when": {"keywords": ["container"]},
             "then": {"team": "asia", "tags": ["bulk"]}},
            {"name": "never", "when": {}, "then": {"team": "sales", "tags": ["x"]}},
        ]
    )  # fmt: skip
    decision = route(settings, msg("one container please", sender="a@bigco.com"))
    assert (decision.team, decision.priority, decision.tags) == (
        "asia",
        "vip",
        ("key-account", "bulk"),
    )
    assert decision.rules == ("vip", "bulk") and decision.rule == "bulk"
    # continue with no later match: the continued rule's decision stands
    only_vip = route(settings_with(settings.model_dump(by_alias=True)["rules"][:1]),
                     msg("hello", sender="a@bigco.com"))  # fmt: skip
    assert (only_vip.priority, only_vip.rule) == ("vip", "vip")


def test_hours_use_the_target_teams_calendar_at_arrival() -> None:
    settings = settings_with(
        [
            {"name": "night-asia", "when": {"hours": "out"}, "then": {"team": "asia"}},
        ]
    )
    opened = {"sales": True, "asia": False}
    asked: list[str] = []

    def open_at(team: str) -> bool:
        asked.append(team)
        return opened[team]

    # "out" is judged on asia's calendar (the rule's target), not the default team's
    assert route(settings, msg("hi"), open_at=open_at).team == "asia"
    assert asked == ["asia"]
    opened["asia"] = True
    assert route(settings, msg("hi"), open_at=open_at).team == "sales"
    # without a calendar the condition is unknown and does not match (it used to match always)
    unknown = route(settings, msg("hi"))
    assert unknown.team == "sales"
    assert "unknown" in unknown.explanation[0]


def test_category_from_the_form_or_the_keyword_table() -> None:
    settings = settings_with(
        [{"name": "samples", "when": {"category": ["sample"]}, "then": {"team": "asia"}}],
        categories=[
            {"name": "sample", "keywords": ["free sample", "样品"]},
            {"name": "quotation", "keywords": ["quote", "price", "报价"]},
        ],
    )
    assert classify_category(settings, "", "Free sample?", "") == "sample"
    assert classify_category(settings, "", "", "请寄样品") == "sample"
    assert classify_category(settings, "Quotation", "", "") == "quotation"
    assert classify_category(settings, "", "hello", "nothing here") == ""
    category = classify_category(settings, "", "", "can you send a free sample")
    assert route(settings, msg("x", category=category)).team == "asia"


def test_shadow_warning_ignores_rules_that_continue_or_have_exceptions() -> None:
    settings = settings_with(
        [
            {"name": "tag-all", "when": {}, "then": {"tags": ["t"], "continue": True}},
            {"name": "de", "when": {"country": ["DE"]}, "then": {"team": "asia"}},
            {"name": "de-bulk", "when": {"country": ["DE"], "keywords": ["container"]},
             "then": {"team": "sales"}},
        ]
    )  # fmt: skip
    warnings = shadowed_rules(settings)
    assert len(warnings) == 1 and "'de-bulk' is shadowed by rules[1] 'de'" in warnings[0]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"given": "Germany", "phone": "+33 1 23 45 67 89"}, CountryGuess("DE", "form", "Germany")),
        ({"given": "mx"}, CountryGuess("MX", "form", "mx")),
        ({"phone": "+49 30 1234 5678", "email": "a@x.fr"}, CountryGuess("DE", "phone", "+49 30 1234 5678")),
        ({"phone": "0086 21 5555 5555"}, CountryGuess("CN", "phone", "0086 21 5555 5555")),
        ({"phone": "+1 (416) 555-0100"}, CountryGuess("CA", "phone", "+1 (416) 555-0100")),
        ({"phone": "+1 212 555 0100"}, CountryGuess("US", "phone", "+1 212 555 0100")),
        ({"phone": "030 1234567", "email": "k@firma.de"}, CountryGuess("DE", "domain", "firma.de")),
        ({"email": "compras@acme.com.mx"}, CountryGuess("MX", "domain", "acme.com.mx")),
        ({"email": "buyer@shop.co.uk"}, CountryGuess("GB", "domain", "shop.co.uk")),
        ({"email": "buyer@gmail.com"}, CountryGuess()),
        ({"email": "ceo@startup.io"}, CountryGuess()),
        ({"email": "a@gmail.com", "text": "Thanks\n\nKlaus Weber\nBerlin, Germany"},
         CountryGuess("DE", "signature", "Berlin, Germany")),
        ({"text": "Regards,\nAna\nCountry: México"}, CountryGuess("MX", "signature", "Country: México")),
        ({"text": "We sell to Germany and France.\nBest, Tom"}, CountryGuess()),
    ],
)  # fmt: skip
def test_country_guess_and_its_source(kwargs: dict[str, str], expected: CountryGuess) -> None:
    assert guess_country(**kwargs) == expected


_WORDS = ["led", "LED lights", "precio", "集装箱", "container", "+", "free money", "ß", "a", "é",
          "leds", "seo services", "dear sir/madam, we are", "e-mail", "c++"]  # fmt: skip


@given(
    keywords=st.lists(st.sampled_from(_WORDS) | st.text(max_size=6), max_size=8),
    text=st.lists(st.sampled_from(_WORDS) | st.text(max_size=12), max_size=6).map(" ".join),
)
def test_many_keywords_match_as_each_alone(keywords: list[str], text: str) -> None:
    """The one-pattern first test of a keyword list never changes what is found: the
    keywords found are exactly those each found alone."""
    alone = [k for k in keywords if find_keywords((k,), text)]
    assert find_keywords(keywords, text) == alone
    assert find_keywords(tuple(keywords), text) == alone
