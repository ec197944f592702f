"""Inbound Slack: the ``/slack/events`` route, Socket Mode, and pure payload parsing.

HTTP mode mounts one route on *our* aiohttp app and converts with
``slack_bolt.adapter.aiohttp`` (``to_bolt_request`` / ``to_aiohttp_response``);
mounting ``bolt.web_app()`` as a sub-app does not work (it 404s). Bolt verifies
every request's signature and timestamp (bad or stale: 401) before any listener
runs. Socket Mode (``AsyncSocketModeHandler``, aiohttp-based) is used when an
app-level token is configured; both feed the same ``AsyncApp``.

What the listeners do lives in ``bot.slack_app``; this module only turns
Slack's payloads into small typed values (``SlackClick``, ``ReplySubmission``)
without I/O.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from cards.actions import parse_inquiry_id
from connectors.safe_decode import BadInput, json_of, text_of
from connectors.slack.render import BODY_ACTION, REASON_BLOCK, SUBJECT_BLOCK

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class BadPayload(ValueError):
    """A Slack payload without the fields we need."""


@dataclass(frozen=True)
class SlackClick:
    """One element of a ``block_actions`` payload."""

    user: str
    action_id: str
    value: str
    trigger_id: str
    channel: str  # "" inside a modal
    message_ts: str  # the card's ts ("" inside a modal)
    action_ts: str
    view_id: str = ""
    view_hash: str = ""
    private_metadata: str = ""

    @property
    def dedupe_key(self) -> str:
        """Same click (a retry, a double delivery) -> same key."""
        return (
            f"slack:{self.channel}:{self.message_ts}:{self.action_id}:{self.user}:{self.action_ts}"[
                :200
            ]
        )


@dataclass(frozen=True)
class ReplySubmission:
    """The reply modal as submitted."""

    user: str
    inquiry_id: int
    template: str
    subject: str
    body: str
    body_block: str


def _selected(action: dict[str, Any]) -> str:
    kind = action.get("type", "")
    if kind == "users_select":
        return str(action.get("selected_user") or "")
    if kind in ("static_select", "overflow", "external_select", "radio_buttons"):
        return str((action.get("selected_option") or {}).get("value", ""))
    return str(action.get("value") or "")


def parse_block_actions(body: dict[str, Any]) -> list[SlackClick]:
    """The clicks in a ``block_actions`` payload (Slack sends one; the format allows several)."""
    if body.get("type") != "block_actions":
        raise BadPayload(f"not a block_actions payload: {str(body.get('type'))[:40]!r}")
    user = str((body.get("user") or {}).get("id", ""))
    if not user:
        raise BadPayload("block_actions without user.id")
    container = body.get("container") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    message_ts = str(container.get("message_ts") or (body.get("message") or {}).get("ts") or "")
    view = body.get("view") or {}
    clicks = []
    for action in body.get("actions") or []:
        clicks.append(
            SlackClick(
                user=user,
                action_id=str(action.get("action_id", "")),
                value=_selected(action),
                trigger_id=str(body.get("trigger_id", "")),
                channel=channel,
                message_ts=message_ts,
                action_ts=str(action.get("action_ts", "")),
                view_id=str(view.get("id", "")),
                view_hash=str(view.get("hash", "")),
                private_metadata=str(view.get("private_metadata", "")),
            )
        )
    return clicks


@dataclass(frozen=True)
class ReasonSubmission:
    """The reason modal's ``view_submission``: which inquiry, which status, the rep's words."""

    user: str
    inquiry_id: int
    status: str
    reason: str
    view_id: str


def parse_reason_submission(body: dict[str, Any]) -> ReasonSubmission:
    """The reason modal's submission (``render.reason_modal``)."""
    view = body.get("view") or {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        inquiry_id, status = parse_inquiry_id(str(meta["inquiry"])), str(meta["status"])[:40]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadPayload("reason modal without inquiry/status in private_metadata") from exc
    values: dict[str, Any] = (view.get("state") or {}).get("values") or {}
    words = str((values.get(REASON_BLOCK, {}).get(REASON_BLOCK) or {}).get("value") or "")
    return ReasonSubmission(
        user=str((body.get("user") or {}).get("id", "")),
        inquiry_id=inquiry_id,
        status=status,
        reason=words.strip(),
        view_id=str(view.get("id", "")),
    )


def parse_reply_submission(body: dict[str, Any]) -> ReplySubmission:
    """The reply modal's ``view_submission``: inquiry (private_metadata), subject, body."""
    view = body.get("view") or {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        inquiry_id = int(meta["inquiry"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadPayload("reply modal without an inquiry in private_metadata") from exc
    values: dict[str, Any] = (view.get("state") or {}).get("values") or {}
    subject = str((values.get(SUBJECT_BLOCK, {}).get(SUBJECT_BLOCK) or {}).get("value") or "")
    body_block = next((b for b in values if b.startswith("body-")), "")
    text = (
        str((values.get(body_block, {}).get(BODY_ACTION) or {}).get("value") or "")
        if body_block
        else ""
    )
    return ReplySubmission(
        user=str((body.get("user") or {}).get("id", "")),
        inquiry_id=inquiry_id,
        template=str(meta.get("template", "")),
        subject=subject,
        body=text,
        body_block=body_block,
    )


def build_bolt_app(*, client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    """The Bolt app: request verification on, our shared Web API client."""
    return AsyncApp(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        # process_before_response=False (default): the HTTP answer leaves as soon as a listener acks.
        raise_error_for_unhandled_request=False,
    )


def refuse_garbled(request: web.Request, body: bytes) -> web.Response | None:
    """A 4xx for what Bolt would crash on before it verifies the signature (``int()`` of
    the timestamp, a ``compare_digest`` of non-ASCII text, an unknown charset, a body its
    ``json.loads`` refuses or recurses too deep in), else ``None``."""
    stamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if stamp and not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return web.json_response(
            {"error": "X-Slack-Request-Timestamp must be unix seconds"}, status=401
        )
    if not request.headers.get("X-Slack-Signature", "").isascii():
        return web.json_response({"error": "invalid X-Slack-Signature"}, status=401)
    try:
        _parse_as_bolt_would(text_of(body, request.charset), request.content_type)
    except BadInput as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return None


def _parse_as_bolt_would(text: str, content_type: str) -> None:
    """The JSON Bolt's ``parse_body`` would parse (the body, or a form's ``payload``),
    parsed first by ``json_of``: nesting too deep (a ``RecursionError`` in Bolt), or not
    JSON at all, is ``BadInput``."""
    if not text:
        return
    if content_type == "application/json" or text.startswith("{"):
        json_of(text.encode("utf-8"))
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            json_of(payload.encode("utf-8"))


def events_routes(bolt: AsyncApp, *, path: str = EVENTS_PATH) -> list[web.RouteDef]:
    """``POST /slack/events`` on our own aiohttp app."""

    async def handle(request: web.Request) -> web.Response:
        refused = refuse_garbled(request, await request.read())
        if refused is not None:
            return refused
        try:
            bolt_request = await to_bolt_request(request)
        except ValueError:  # Bolt parses the body before it verifies the signature
            return web.json_response(
                {"error": "the body is not the JSON or form data its Content-Type names"},
                status=400,
            )
        retry = request.headers.get("X-Slack-Retry-Num")
        if retry:
            log.info(
                "slack retry delivery",
                extra={"retry": retry, "reason": request.headers.get("X-Slack-Retry-Reason", "")},
            )
        response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    return [web.post(path, handle)]


class SocketMode:
    """Socket Mode connection (app-level token ``xapp-…``): started and stopped with the service."""

    def __init__(
        self, bolt: AsyncApp, *, app_token: str, client: AsyncWebClient, ping_interval: float = 10.0
    ) -> None:
        self.handler = AsyncSocketModeHandler(
            bolt, app_token=app_token, web_client=client, ping_interval=ping_interval
        )

    async def start(self) -> None:
        await self.handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack socket mode connected")

    async def stop(self) -> None:
        await self.handler.close_async()  # type: ignore[no-untyped-call]
