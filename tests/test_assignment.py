"""Assignment strategies as pure decisions: pool, round robin, least open, language, max_open,
away, sticky and a rule's ``then.assign``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from config.loading import settings_from_mapping
from config.schema import Settings
from routing.assignment import AssignmentRequest, choose, pick_turn
from tests.conftest import base_config


def team_settings(assignment: str = "round_robin", **team: Any) -> Settings:
    config = base_config()
    config["teams"][0].update(
        {"members": ["alice", "bob", "carol"], "assignment": assignment, **team}
    )
    config["reps"].append({"id": "carol", "name": "Carol", "languages": ["es"], "max_open": 2})
    config["reps"][1]["languages"] = ["es", "en"]  # bob
    return settings_from_mapping(config)


def request(settings: Settings, **kw: Any) -> AssignmentRequest:
    return AssignmentRequest(team=settings.team("sales"), **kw)


def test_pool_leaves_it_to_the_card() -> None:
    settings = team_settings("pool")
    choice = choose(settings, request(settings))
    assert choice.rep == "" and choice.strategy == "pool"


def test_round_robin_rotates_fairly_over_the_reps_on_duty() -> None:
    settings = team_settings()
    base = choose(settings, request(settings, away=frozenset({"alice"})))
    assert base.needs_turn and base.candidates == ("bob", "carol")
    picks = Counter(pick_turn(base, turn).rep for turn in range(100))
    assert picks == {"bob": 50, "carol": 50}
    assert "alice away" in base.reason


def test_least_open_and_max_open() -> None:
    settings = team_settings("least_open")
    counts = {"alice": 3, "bob": 1, "carol": 2}
    choice = choose(settings, request(settings, open_counts=counts))
    assert choice.rep == "bob" and "carol full (2/2)" in choice.reason
    counts["bob"] = 5
    assert choose(settings, request(settings, open_counts=counts)).rep == "alice"


def test_language_speakers_are_preferred_when_any_is_on_duty() -> None:
    settings = team_settings("least_open")
    choice = choose(settings, request(settings, language="es", open_counts={"carol": 0, "bob": 1}))
    assert choice.candidates == ("bob", "carol") and choice.rep == "carol"
    # nobody speaks German: everyone on duty stays a candidate
    assert choose(settings, request(settings, language="de")).candidates == (
        "alice",
        "bob",
        "carol",
    )


def test_sticky_returns_a_customer_to_their_previous_owner_if_on_duty() -> None:
    settings = team_settings(sticky=True)
    assert choose(settings, request(settings, previous_owner="carol")).rep == "carol"
    away = choose(settings, request(settings, previous_owner="carol", away=frozenset({"carol"})))
    assert away.rep == "" and away.needs_turn


def test_rule_names_a_rep_or_a_strategy() -> None:
    settings = team_settings("pool")
    assert choose(settings, request(settings, rule_assign="bob")).rep == "bob"
    fallback = choose(settings, request(settings, rule_assign="bob", away=frozenset({"bob"})))
    assert fallback.rep == "" and "bob named by the rule is not available" in fallback.reason
    assert choose(settings, request(settings, rule_assign="round_robin")).needs_turn


def test_nobody_on_duty_stays_in_the_pool() -> None:
    settings = team_settings()
    choice = choose(settings, request(settings, away=frozenset({"alice", "bob", "carol"})))
    assert choice.rep == "" and not choice.needs_turn and "nobody on duty" in choice.reason
