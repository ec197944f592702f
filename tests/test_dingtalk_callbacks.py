"""Card callback payloads (from DingTalk's documentation) parse into clicks, or a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.dingtalk.callbacks import BadCallback, parse_callback
from connectors.dingtalk.render import inquiry_of, out_track_id
from connectors.dingtalk.strings import STRINGS

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "dingtalk" / "callbacks.json").read_text("utf-8")
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_callback_table(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(BadCallback) as caught:
            parse_callback(case["data"])
        assert caught.value.key == case["error"]
        assert case["error"] in STRINGS["zh-CN"]
        return
    click = parse_callback(case["data"])
    expect = case["expect"]
    assert (click.inquiry_id, click.verb.value, click.user, click.value) == (
        expect["inquiry_id"],
        expect["verb"],
        expect["user"],
        expect["value"],
    )


def test_same_payload_same_fingerprint_other_user_differs() -> None:
    data = CASES[0]["data"]
    assert parse_callback(data).fingerprint == parse_callback(dict(data)).fingerprint
    other = {**data, "userId": "someone-else"}
    assert parse_callback(other).fingerprint != parse_callback(data).fingerprint


def test_out_track_id_is_stable_and_carries_the_inquiry() -> None:
    first = out_track_id("1042", "post:1042:cidA")
    assert first == out_track_id("1042", "post:1042:cidA")
    assert first != out_track_id("1042", "post:1042:cidB")
    assert inquiry_of(first) == 1042
    assert inquiry_of("cd1.digest-card.abc") is None
    assert len(first) <= 64
