"""A status chosen on a chat card carries its listed lost reason in its value
(``cards.status_choices``); the interaction backend reads it back for every platform."""

from __future__ import annotations

from cards.actions import Action, Verb
from cards.status_choices import with_listed_reason


def _status(value: str, reason: str = "") -> Action:
    return Action(1042, Verb.STATUS, "wecom", "wangli", value=value, reason=reason)


def test_a_listed_reason_becomes_the_actions_reason() -> None:
    action = with_listed_reason(_status("lost|price"))
    assert (action.value, action.reason, action.platform) == ("lost", "price", "wecom")


def test_a_choice_that_needs_words_leaves_the_reason_to_ask_for() -> None:
    action = with_listed_reason(_status("won|?"))
    assert (action.value, action.reason) == ("won", "")


def test_plain_statuses_other_verbs_and_given_words_are_left_alone() -> None:
    plain = _status("waiting")
    assert with_listed_reason(plain) is plain
    snooze = Action(1042, Verb.SNOOZE, "slack", "U1", value="1h|x")
    assert with_listed_reason(snooze) is snooze
    # Slack's modal already gave words: they stay
    assert with_listed_reason(_status("lost|?", reason="too far")).reason == "too far"
