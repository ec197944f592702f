"""Every surface at once: a config with the sales team on Slack, DingTalk and WeCom (plus the
web inbox), the three fake platforms on 127.0.0.1, and what each surface currently shows.

Used by ``tests/test_every_surface.py`` and ``bench/bench_platforms.py``: the real
``Service`` with its real platform packages (``connectors.registry``), only the platforms'
servers are fakes — DingTalk's Stream gateway and OpenAPI, WeCom's qyapi, Slack's Web API.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.channels import Pacing
from connectors.dingtalk.render import inquiry_of
from tests.fakes.dingtalk_api import CLIENT_ID, CLIENT_SECRET, FakeDingTalk
from tests.fakes.slack_api import FakeSlack
from tests.fakes.wecom_api import FakeWeCom
from tests.support.slack import CHANNEL, slack_config
from tests.support.wecom import AES_KEY, CHAT, CORP, TOKEN, click_xml, encrypted_post

GROUP = "cidSALES+group=="  # the DingTalk group's openConversationId (base64-like, as real ones)
TEMPLATE = "tpl-claimdesk.schema"

# sales reps on every platform (the team's other members have no platform ids)
REPS = {
    "alice": {"slack_id": "UALICE", "dingtalk_id": "ding-alice", "wecom_id": "wx-alice"},
    "bob": {"slack_id": "UBOB", "dingtalk_id": "ding-bob", "wecom_id": "wx-bob"},
    "lena": {"slack_id": "ULENA", "dingtalk_id": "ding-lena", "wecom_id": "wx-lena"},
    "max": {"slack_id": "UMAX", "dingtalk_id": "ding-max", "wecom_id": "wx-max"},
}
NAMES = {"alice": "Alice", "bob": "Bob"}


@dataclass
class Fakes:
    """The three fake platform servers."""

    slack: FakeSlack
    dingtalk: FakeDingTalk
    wecom: FakeWeCom

    @classmethod
    async def start(cls, prepare: Callable[[Fakes], object] | None = None) -> Fakes:
        """Start all three; ``prepare`` sees them before their routes are bound (benches wrap
        handlers there)."""
        slack = FakeSlack(
            channels={CHANNEL: {"name": "sales", "is_member": True}},
            users={"UALICE": {"email": "alice@seller.test"}, "UBOB": {"email": "bob@seller.test"}},
        )
        fakes = cls(slack, FakeDingTalk(), FakeWeCom(corp_id=CORP))
        if prepare is not None:
            prepare(fakes)
        for fake in (fakes.slack, fakes.dingtalk, fakes.wecom):
            await fake.start()
        return fakes

    async def stop(self) -> None:
        self.slack.release()
        for fake in (self.slack, self.dingtalk, self.wecom):
            await fake.stop()


def every_surface_config(base: dict[str, Any], fakes: Fakes) -> dict[str, Any]:
    """``base`` with the sales team posting to Slack, a DingTalk group and a WeCom chat."""
    data = slack_config(base, fakes.slack.base_url)
    data = copy.deepcopy(data)
    for team in data["teams"]:
        if team["name"] == "sales":
            team["destinations"] = {
                "slack_channel": CHANNEL,
                "dingtalk_conversation": GROUP,
                "wecom_chat": CHAT,
            }
    for rep in data["reps"]:
        rep.update(REPS.get(rep["id"], {}))
    data["dingtalk"] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "robot_code": CLIENT_ID,
        "card_template_id": TEMPLATE,
        "api_base_url": fakes.dingtalk.base_url,
    }
    data["wecom"] = {
        "corp_id": CORP,
        "secret": fakes.wecom.secret,
        "agent_id": fakes.wecom.agent_id,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": fakes.wecom.base_url,
    }
    return data


def unpaced(service: Any) -> None:
    """No spacing between posts to one group (the platforms' 20/min pacing makes a test of
    many inquiries wait minutes; pacing itself is tested per connector)."""
    for channel in service.ctx.channels.values():
        channel.pacing = Pacing(post_interval=0.0, update_interval=0.0)


# -- what DingTalk shows ------------------------------------------------------------


def dingtalk_card(fake: FakeDingTalk, number: int) -> tuple[str, dict[str, str]] | None:
    """(outTrackId, current public card data) of inquiry ``number``'s card in the group."""
    for track, card in fake.cards.items():
        if inquiry_of(track) == number and card["conversation"] == GROUP:
            return track, dict(card["params"])
    return None


def dingtalk_shows(fake: FakeDingTalk, number: int, text: str) -> bool:
    found = dingtalk_card(fake, number)
    return found is not None and text in found[1].get("fields_md", "")


def dingtalk_click(track: str, user: str, action: str = "claim", value: str = "") -> dict[str, Any]:
    """A card callback's ``data`` as documented (``content`` JSON in a string)."""
    params = {"action": action, **({"value": value} if value else {})}
    return {
        "type": "actionCallback",
        "outTrackId": track,
        "corpId": "ding-corp",
        "userId": user,
        "content": json.dumps({"cardPrivateData": {"actionIds": [action], "params": params}}),
    }


def dingtalk_notice(ack: dict[str, Any]) -> str:
    """What the clicker alone is told (the ACK's ``userPrivateData``)."""
    assert ack["code"] == 200, ack
    data = json.loads(ack["data"])
    return str(data["response"]["userPrivateData"]["cardParamMap"].get("notice", ""))


# -- what WeCom shows ---------------------------------------------------------------


def wecom_task(fake: FakeWeCom, number: int) -> str:
    """The task id of inquiry ``number``'s newest rep card ("" when none was sent)."""
    link = _link(number)
    found = [t.task_id for t in fake.tasks.values() if link.search(json.dumps(t.card))]
    return found[-1] if found else ""


def wecom_shows(fake: FakeWeCom, number: int, text: str) -> bool:
    task = wecom_task(fake, number)
    if not task:
        return False
    card = fake.tasks[task].card
    return any(text in str(i.get("value", "")) for i in card.get("horizontal_content_list", []))


def wecom_group_lines(fake: FakeWeCom, number: int) -> list[str]:
    link = _link(number)
    return [line for line in fake.groups.get(CHAT, []) if link.search(line)]


def _link(number: int) -> re.Pattern[str]:
    """The inquiry's link in a post or card (its number alone may be escaped)."""
    return re.compile(rf"/web/inquiries/{number}(?!\d)")


_create_times = iter(range(int(time.time()), 2**40))


@dataclass(frozen=True)
class WeComClick:
    """An encrypted ``template_card_event`` as WeCom POSTs it, and the code it carries."""

    body: bytes
    query: dict[str, str]
    code: str


def wecom_click(
    fake: FakeWeCom,
    user: str,
    action_id: str,
    *,
    task: str = "",
    create_time: int = 0,
    chosen: str = "",
) -> WeComClick:
    """A click on ``action_id`` on the card ``task`` (default: the inquiry's newest card);
    ``chosen``: the option id picked in the card's drop-down (``SelectedItems``)."""
    number = int(action_id.rsplit(":", 1)[1])
    task = task or wecom_task(fake, number)
    code = fake.click(task)
    at = create_time or next(_create_times)
    selected = (
        "<SelectedItems><SelectedItem>"
        f"<QuestionKey><![CDATA[{action_id}]]></QuestionKey>"
        f"<OptionIds><OptionId><![CDATA[{chosen}]]></OptionId></OptionIds>"
        "</SelectedItem></SelectedItems>"
        if chosen
        else ""
    )
    body, query = encrypted_post(
        click_xml(user, action_id, task, code, create_time=at, selected=selected)
    )
    return WeComClick(body.encode(), query, code)


# -- what Slack shows ---------------------------------------------------------------

_NUMBER = re.compile(r"#(\d+)\b")


def slack_card(fake: FakeSlack, number: int) -> dict[str, Any] | None:
    for message in fake.messages(CHANNEL):
        found = _NUMBER.search(str(message.get("text", "")))
        if found and int(found.group(1)) == number:
            return message
    return None


def slack_shows(fake: FakeSlack, number: int, text: str) -> bool:
    message = slack_card(fake, number)
    return message is not None and text in json.dumps(message.get("blocks", []), ensure_ascii=False)
