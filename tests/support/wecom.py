"""WeCom test helpers: a config with a team on WeCom, inquiry cards, and callbacks
encrypted and signed with wechatpy's real ``WeChatCrypto`` (as WeCom sends them)."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from wechatpy.work.crypto import PrpCrypto, WeChatCrypto

from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Card
from config.loading import settings_from_mapping
from config.schema import Settings
from connectors.wecom.callback import signature
from tests.conftest import base_config

CORP = "ww-test-corp"
TOKEN = "cb-token-7Hq"
AES_KEY = base64.b64encode(b"claimdesk-wecom-test-key-32bytes").decode().rstrip("=")
CHAT = "wrchat-sales"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def wecom_settings(base_url: str, **wecom: Any) -> Settings:
    config = base_config()
    config["wecom"] = {
        "corp_id": CORP,
        "secret": "corp-secret",
        "agent_id": 1000002,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": base_url,
        **wecom,
    }
    config["reps"] = [
        *config.get("reps", []),
        {"id": "li", "name": "王丽", "wecom_id": "wangli"},
        {"id": "wei", "name": "张伟", "wecom_id": "zhangwei"},
        {"id": "boss", "name": "李经理", "wecom_id": "lijingli"},
        {"id": "nowecom", "name": "No WeCom"},
    ]
    team = config["teams"][0]
    team.update(
        members=["li", "wei", "nowecom"],
        leads=[],
        managers=["boss"],
        locale="zh-CN",
        destinations={"wecom_chat": CHAT},
    )
    return settings_from_mapping(config)


def inquiry_card(
    number: int = 1042,
    *,
    status: str = "new",
    owner: str = "",
    version: int = 1,
    subject: str = "Quote for 40HQ containers",
    snippet: str = "Please send your best price.",
    locale: str = "zh-CN",
) -> Card:
    view = inquiry_view(number, status=status, owner=owner, subject=subject, snippet=snippet)
    card = build_inquiry_card(view, now=NOW, locale=locale)
    return replace(card, version=version)


def inquiry_view(
    number: int = 1042,
    *,
    status: str = "new",
    owner: str = "",
    subject: str = "Quote for 40HQ containers",
    snippet: str = "Please send your best price.",
) -> InquiryView:
    return InquiryView(
        number=number,
        version=1,
        team="sales",
        status=status,
        priority="normal",
        subject=subject,
        snippet=snippet,
        source="website",
        contact_name="Ana Souza",
        contact_email="ana@buyer.test",
        company="Buyer Ltda",
        country="BR",
        language="pt",
        received_at=NOW - timedelta(minutes=5),
        owner_name=owner,
        link_url=f"http://claimdesk.test/web/inquiries/{number}",
    )


def click_xml(
    user: str,
    key: str,
    task_id: str,
    code: str,
    *,
    create_time: int = 1764400000,
    selected: str = "",
) -> str:
    """A ``template_card_event`` in WeCom's documented plaintext shape."""
    return (
        "<xml><ToUserName><![CDATA[" + CORP + "]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{create_time}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
        "<CardType><![CDATA[button_interaction]]></CardType>"
        f"<ResponseCode><![CDATA[{code}]]></ResponseCode><AgentID>1000002</AgentID>{selected}</xml>"
    )


def encrypted_post(
    plain_xml: str, *, nonce: str = "n0nce42", timestamp: str = "1764400000"
) -> tuple[str, dict[str, str]]:
    """The POST body and query WeCom sends for ``plain_xml``."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    envelope = crypto.encrypt_message(plain_xml, nonce, timestamp)
    encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope)
    signed = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]></MsgSignature>", envelope)
    assert encrypted and signed
    body = (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted.group(1)}]]></Encrypt>"
        "<AgentID><![CDATA[1000002]]></AgentID></xml>"
    )
    return body, {"msg_signature": signed.group(1), "timestamp": timestamp, "nonce": nonce}


def echostr_query(echo: str, *, nonce: str = "n1", timestamp: str = "1764400001") -> dict[str, str]:
    """The URL-verification GET query for plaintext ``echo``."""
    key = base64.b64decode(AES_KEY + "=")
    encrypted = PrpCrypto(key).encrypt(echo, CORP)
    encrypted = encrypted.decode() if isinstance(encrypted, bytes) else str(encrypted)
    return {
        "msg_signature": signature(TOKEN, timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": encrypted,
    }
