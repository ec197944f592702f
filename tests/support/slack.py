"""Helpers for Slack tests: fixture payloads, signed requests, a config with Slack on."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from slack_sdk.signature import SignatureVerifier

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slack"
SIGNING_SECRET = "slack-signing-secret-123"
CHANNEL = "CSALES"
_counter = iter(range(1, 10**9))


def fixture(
    name: str,
    *,
    action_id: str = "",
    value: str = "",
    user: str = "",
    channel: str = "",
    message_ts: str = "",
    trigger_id: str = "",
    action_ts: str = "",
) -> dict[str, Any]:
    """A payload from ``tests/fixtures/slack`` with the test's values filled in."""
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    body = copy.deepcopy(body)
    if user:
        body["user"]["id"] = user
        body["user"]["username"] = body["user"]["name"] = user.lower()
    if trigger_id:
        body["trigger_id"] = trigger_id
    if body["type"] == "block_actions":
        if channel:
            body["channel"]["id"] = body["container"]["channel_id"] = channel
        if message_ts:
            body["container"]["message_ts"] = body["message"]["ts"] = message_ts
        action = body["actions"][0]
        if action_id:
            action["action_id"] = action_id
            if action["type"] == "button":
                action["value"] = action_id
        if value:
            if action["type"] == "button":
                action["value"] = value
            elif action["type"] == "users_select":
                action["selected_user"] = value
            else:
                action["selected_option"]["value"] = value
        action["action_ts"] = action_ts or f"{int(time.time())}.{next(_counter):06d}"
    return body


def users_select(
    action_id: str, user: str, selected: str, *, channel: str, message_ts: str
) -> dict[str, Any]:
    body = fixture("block_actions_button.json", user=user, channel=channel, message_ts=message_ts)
    body["actions"] = [
        {
            "type": "users_select",
            "action_id": action_id,
            "block_id": "actions",
            "selected_user": selected,
            "action_ts": f"{int(time.time())}.{next(_counter):06d}",
        }
    ]
    return body


def form_body(payload: dict[str, Any]) -> str:
    return f"payload={quote(json.dumps(payload))}"


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def slack_config(
    base: dict[str, Any], api_base_url: str, *, app_token: str = "", channel: str = CHANNEL
) -> dict[str, Any]:
    """``base_config`` with Slack on and the sales team posting into ``channel``."""
    data = copy.deepcopy(base)
    for team in data["teams"]:
        if team["name"] == "sales":
            team["destinations"] = {"slack_channel": channel}
    data["slack"] = {
        "bot_token": "xoxb-test-token",
        "signing_secret": SIGNING_SECRET,
        "app_token": app_token,
        "api_base_url": api_base_url,
    }
    return data


def with_slack(config: Path, token: str, api_base_url: str) -> Path:
    """``config`` (``tests.test_crash_restart.write_config``'s file, one team "sales") with
    Slack on: the team posts to ``CHANNEL`` through the Web API at ``api_base_url``."""
    text = config.read_text(encoding="utf-8")
    hours = 'business_hours = { "mon-sun" = ["00:00-24:00"] }'
    assert hours in text
    config.write_text(
        text.replace(hours, f'{hours}\ndestinations = {{ slack_channel = "{CHANNEL}" }}')
        + f"""
[slack]
bot_token = "{token}"
signing_secret = "{SIGNING_SECRET}"
api_base_url = "{api_base_url}"
""",
        encoding="utf-8",
    )
    return config
