"""The DingTalk Stream connection: card callbacks in, outcomes back, on our own loop.

We use the real dingtalk-stream client (0.24.3) for what it does well — frame
parsing (``CallbackMessage``/``SystemMessage``), the callback-handler contract and
the ACK format (``AckMessage``: ``data = {"response": ...}``) — and own the rest,
because 0.24.3 (PLATFORMS.md §2.7) opens the connection and fetches tokens with
blocking ``requests`` on the loop, swallows ``CancelledError`` in ``start()``,
reconnects without delay, reads ``DINGTALK_OPENAPI_ENDPOINT`` at import time and
finds its local IP with a UDP ``connect`` to 8.8.8.8. So ``ClaimdeskStreamClient``:

- opens the connection (``POST {api_base_url}/v1.0/gateway/connections/open``,
  developerpedia ``docs/learn/stream/protocol.md``) with our aiohttp session, so
  ``[dingtalk] api_base_url`` drives it and the loop never blocks; the SDK's
  ``open_connection``/``get_access_token`` are disabled (they would block and use
  the import-time endpoint);
- runs its own receive loop with bounded exponential backoff and jitter after the
  gateway closes or drops the socket (or sends SYSTEM ``disconnect``);
- stops cleanly: ``stop()`` closes the socket, cancels the loop, lets in-flight
  clicks finish (they may have been acknowledged to the user).

The ticket is single-use and valid 90 s (protocol.md), so each reconnect opens a
new connection. Several processes may connect with one app: DingTalk picks one
socket per push (protocol.md FAQ), which is why every click goes through
``Interactions.act`` (state in the database) and never through local state.

Card callbacks must be answered within 2 s
(open.dingtalk.com/document/development/event-callback-card, "注意事项"): ``act``
gets ``ack_budget`` seconds; a slower one keeps running (shielded) and the clicker
is told the card updates in a moment. The answer carries the outcome in the
clicker's private data (``userPrivateData.cardParamMap.notice``) — public data
returned there only reaches the clicker, so everyone's copy is updated by the
outbox with ``PUT /v1.0/card/instances`` (message-card-sending-and-updating).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import dingtalk_stream
import websockets
from dingtalk_stream import AckMessage, CallbackHandler, CallbackMessage, SystemMessage

from cards.actions import Action, ActionOutcome, Verb
from connectors.dingtalk.callbacks import BadCallback, CardClick, parse_callback
from connectors.dingtalk.render import render_notice
from connectors.dingtalk.strings import dtext
from connectors.platform import Interactions

log = logging.getLogger(__name__)

CARD_TOPIC = CallbackHandler.TOPIC_CARD_CALLBACK  # "/v1.0/card/instances/callback"
OPEN_PATH = "/v1.0/gateway/connections/open"
UPDATE_OPTIONS = {"updateCardDataByKey": True, "updatePrivateDataByKey": True}


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial * 2**n`` up to ``maximum``, ±``jitter`` fraction."""

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * (2 ** min(attempt, 16)))
        return float(base * (1 + random.uniform(-self.jitter, self.jitter)))


class CardCallbackRouter(CallbackHandler):  # type: ignore[misc]
    """The SDK's callback handler for our cards: parse, ``act``, answer the clicker."""

    def __init__(
        self, interactions: Interactions, *, locale: str = "zh-CN", ack_budget: float = 1.5
    ) -> None:
        super().__init__()
        self.logger = log
        self.interactions = interactions
        self.locale = locale
        self.ack_budget = ack_budget
        self.pending: set[asyncio.Task[dict[str, str]]] = set()

    async def process(self, message: CallbackMessage) -> tuple[int, dict[str, Any]]:
        data = message.data if isinstance(message.data, dict) else {}
        try:
            click = parse_callback(data)
        except BadCallback as exc:
            log.warning("dingtalk card callback refused: %s", exc)
            return AckMessage.STATUS_OK, _answer({"notice": dtext(self.locale, exc.key)})
        request_id = str(message.headers.message_id or "") or click.fingerprint
        task = asyncio.ensure_future(self._apply(click, request_id))
        self.pending.add(task)
        task.add_done_callback(self._finished)
        try:
            private = await asyncio.wait_for(asyncio.shield(task), self.ack_budget)
        except TimeoutError:
            log.info(
                "dingtalk click %s on #%s still running after the ACK budget",
                request_id,
                click.inquiry_id,
            )
            private = {"notice": dtext(self.locale, "dingtalk.processing")}
        except Exception:
            log.exception("dingtalk click %s on #%s failed", request_id, click.inquiry_id)
            private = {"notice": dtext(self.locale, "dingtalk.error")}
        return AckMessage.STATUS_OK, _answer(private)

    def _finished(self, task: asyncio.Task[dict[str, str]]) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dingtalk click failed: %r", task.exception())

    async def _apply(self, click: CardClick, request_id: str) -> dict[str, str]:
        action = Action(
            inquiry_id=click.inquiry_id,
            verb=click.verb,
            platform="dingtalk",
            user=click.user,
            value=click.value,
            request_id=request_id,
        )
        outcome = await self.interactions.act(action)
        private = render_notice(outcome.message)
        if click.verb is Verb.REPLY and outcome.ok:
            # The signed link: DingTalk's in-app browser has no claimdesk session.
            url = await self._reply_link(click, outcome) or outcome.open_url
            if url:
                private["reply_url"] = url
                private["show_reply_link"] = "true"
        return private

    async def _reply_link(self, click: CardClick, outcome: ActionOutcome) -> str:
        rep = await self.interactions.rep_for("dingtalk", click.user)
        if rep is None:
            return ""
        return await self.interactions.reply_link(click.inquiry_id, rep)


def _answer(private: dict[str, str]) -> dict[str, Any]:
    """The callback answer: the clicker's private card data (documented response shape)."""
    return {"cardUpdateOptions": UPDATE_OPTIONS, "userPrivateData": {"cardParamMap": private}}


class ClaimdeskStreamClient(dingtalk_stream.DingTalkStreamClient):  # type: ignore[misc]
    """dingtalk-stream's client with a non-blocking open, our own loop and a clean stop."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        api_base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(dingtalk_stream.Credential(client_id, client_secret), logger=log)
        self.open_url = api_base_url.rstrip("/") + OPEN_PATH
        # The SDK computed OPEN_CONNECTION_API from DINGTALK_OPENAPI_ENDPOINT at import;
        # ours comes from [dingtalk] api_base_url (and open_connection is replaced anyway).
        self.OPEN_CONNECTION_API = self.open_url
        self._session = session
        self.backoff = backoff or Backoff()
        self.connections = 0  # sockets opened so far (observability, tests)
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._socket: Any = None
        self._frames: set[asyncio.Task[None]] = set()

    # The SDK's blocking paths must never run on our loop.
    def open_connection(self) -> None:
        raise RuntimeError("blocking open_connection disabled; use open_connection_async")

    def get_access_token(self) -> None:
        raise RuntimeError("the SDK's blocking token fetch is disabled; use DingTalkOpenApi")

    def get_host_ip(self) -> str:
        return ""  # localIp is optional (protocol.md); the SDK would UDP-connect to 8.8.8.8

    async def open_connection_async(self) -> dict[str, Any]:
        """``{endpoint, ticket}`` for one socket (the SDK's request body, sent with aiohttp)."""
        subscriptions = [{"type": "CALLBACK", "topic": t} for t in self.callback_handler_map]
        if self._is_event_required:
            subscriptions.insert(0, {"type": "EVENT", "topic": "*"})
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": subscriptions,
            "ua": f"claimdesk dingtalk-sdk-python/v{dingtalk_stream.stream.VERSION_STRING}",
            "localIp": self.get_host_ip(),
        }
        async with self._session().post(
            self.open_url, json=body, headers={"Accept": "application/json"}
        ) as response:
            text = await response.text()
            if response.status >= 400:
                # Never log the body we sent (it holds the secret); the answer is safe.
                raise ConnectionError(f"open connection: HTTP {response.status} {text[:200]}")
            answer = json.loads(text)
        if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
            raise ConnectionError("open connection: no endpoint/ticket in the answer")
        return answer

    async def run(self) -> None:
        """Connect, receive, reconnect with backoff — until ``stop``."""
        self.pre_start()
        attempt = 0
        while not self._stopping.is_set():
            try:
                connection = await self.open_connection_async()
                uri = f"{connection['endpoint']}?ticket={quote_plus(str(connection['ticket']))}"
                socket: Any
                async with websockets.connect(
                    uri, open_timeout=10, max_size=2**22, proxy=None
                ) as socket:
                    self._socket = self.websocket = socket
                    self.connections += 1
                    self.connected.set()
                    attempt = 0
                    log.info("dingtalk stream connected (%d)", self.connections)
                    async for raw in socket:
                        self._spawn(socket, raw)
                log.info("dingtalk stream closed by the gateway; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, ValueError, aiohttp.ClientError, websockets.WebSocketException) as exc:
                log.warning("dingtalk stream: %s: %s", type(exc).__name__, str(exc)[:200])
            finally:
                self._socket = self.websocket = None
                self.connected.clear()
            if self._stopping.is_set():
                break
            delay = self.backoff.delay(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _spawn(self, socket: Any, raw: str | bytes) -> None:
        task = asyncio.ensure_future(self._route(socket, raw))
        self._frames.add(task)
        task.add_done_callback(self._frames.discard)

    async def _route(self, socket: Any, raw: str | bytes) -> None:
        """One frame: SYSTEM ping → echo; disconnect → close; CALLBACK → handler → ACK."""
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("dingtalk stream: a frame that is not JSON (%d bytes)", len(raw))
            return
        kind = frame.get("type", "") if isinstance(frame, dict) else ""
        ack = None
        if kind == SystemMessage.TYPE:
            message = SystemMessage.from_dict(frame)
            if message.headers.topic == SystemMessage.TOPIC_DISCONNECT:
                log.info("dingtalk stream: gateway asks to disconnect (%s)", message.data)
                await socket.close()
                return
            ack = await self.system_handler.raw_process(message)
        elif kind == CallbackMessage.TYPE:
            message = CallbackMessage.from_dict(frame)
            handler = self.callback_handler_map.get(message.headers.topic)
            if handler is None:
                log.warning("dingtalk stream: callback on unknown topic %s", message.headers.topic)
                ack = AckMessage()
                ack.code = AckMessage.STATUS_NOT_IMPLEMENT
                ack.headers.message_id = message.headers.message_id
                ack.headers.content_type = "application/json"
                ack.message = "unknown topic"
            else:
                ack = await handler.raw_process(message)
        else:
            log.info("dingtalk stream: ignoring a %r frame", kind)
            return
        try:
            await socket.send(json.dumps(ack.to_dict(), ensure_ascii=False))
        except websockets.ConnectionClosed:
            log.warning(
                "dingtalk stream: socket closed before the ACK of %s", ack.headers.message_id
            )

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        socket = self._socket
        if socket is not None:
            await socket.close()
        if self._frames:
            await asyncio.wait(set(self._frames), timeout=grace)


class DingTalkStream:
    """The running Stream connection of one app: start it, stop it."""

    def __init__(
        self,
        interactions: Interactions,
        *,
        client_id: str,
        client_secret: str,
        api_base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        locale: str = "zh-CN",
        ack_budget: float = 1.5,
        backoff: Backoff | None = None,
    ) -> None:
        self.router = CardCallbackRouter(interactions, locale=locale, ack_budget=ack_budget)
        self.client = ClaimdeskStreamClient(
            client_id=client_id,
            client_secret=client_secret,
            api_base_url=api_base_url,
            session=session,
            backoff=backoff,
        )
        self.client.register_callback_handler(CARD_TOPIC, self.router)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the receive loop as a task (returns at once; connects in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self.client.run(), name="dingtalk-stream")

    async def wait_connected(self) -> None:
        await self.client.connected.wait()

    async def stop(self) -> None:
        await self.client.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        pending = set(self.router.pending)
        if pending:
            await asyncio.wait(pending, timeout=5.0)
