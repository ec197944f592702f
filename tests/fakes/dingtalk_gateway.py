"""A fake DingTalk Stream gateway speaking the documented protocol (developerpedia
``docs/learn/stream/protocol.md``), mounted on the fake OpenAPI's server.

- ``POST /v1.0/gateway/connections/open`` with ``{clientId, clientSecret, subscriptions,
  ua, localIp}`` → ``{endpoint, ticket}``; the ticket is single-use.
- ``GET /connect?ticket=…`` (WebSocket). Frames pushed: ``{specVersion, type, headers{topic,
  messageId, contentType, time}, data: "<json string>"}`` of type SYSTEM (``ping`` with
  ``opaque``, ``disconnect`` with ``reason``) and CALLBACK; the client answers
  ``{code, headers{messageId, contentType}, message, data}``, collected in ``acks``.
- ``drop()`` closes every socket abruptly (a network drop); ``disconnect()`` sends
  the SYSTEM ``disconnect`` frame like the gateway does before it closes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class FakeGateway:
    """The Stream side of the fake; ``install(app)`` adds its routes."""

    client_id: str
    client_secret: str
    ws_url: str = ""
    opens: list[dict[str, Any]] = field(default_factory=list)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # messageId -> latest ACK
    ack_log: list[tuple[str, float]] = field(default_factory=list)  # (messageId, loop time)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tickets: set[str] = set()
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connected = asyncio.Event()
        self.total_connections = 0
        self.open_gate: asyncio.Event | None = None  # when set up, opens wait for it
        self._changed = asyncio.Condition()

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1.0/gateway/connections/open", self._open)
        app.router.add_get("/connect", self._connect)

    async def _open(self, request: web.Request) -> web.Response:
        if self.open_gate is not None:
            await self.open_gate.wait()
        body = await request.json()
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.client_secret:
            return web.json_response(
                {"code": "invalidClient", "message": "bad credentials"}, status=401
            )
        self.opens.append(body)
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return web.json_response({"endpoint": self.ws_url, "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=403, text="bad ticket")
        self._tickets.discard(ticket)  # single use
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        self.total_connections += 1
        self.connected.set()
        async with self._changed:
            self._changed.notify_all()
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(message.data)
                message_id = str((ack.get("headers") or {}).get("messageId", ""))
                self.acks[message_id] = ack
                self.ack_log.append((message_id, asyncio.get_running_loop().time()))
                waiter = self._ack_waiters.pop(message_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            if socket in self.sockets:
                self.sockets.remove(socket)
            if not self.sockets:
                self.connected.clear()
        return socket

    async def wait_connected(self, total: int = 1) -> None:
        """Until a socket is open and ``total`` sockets were opened since the start."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: bool(self.sockets) and self.total_connections >= total
            )

    async def push(
        self, frame: dict[str, Any], *, socket: int = -1
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a frame on one socket (the newest by default); the future resolves with its ACK."""
        await self.wait_connected()
        message_id = str(frame["headers"].get("messageId", ""))
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[message_id] = waiter
        await self.sockets[socket].send_str(json.dumps(frame, ensure_ascii=False))
        return waiter

    async def callback(
        self,
        data: dict[str, Any],
        *,
        message_id: str = "",
        topic: str = "/v1.0/card/instances/callback",
    ) -> dict[str, Any]:
        """Push a CALLBACK frame and wait for its ACK."""
        frame = callback_frame(data, message_id=message_id or uuid.uuid4().hex, topic=topic)
        return await (await self.push(frame))

    async def ping(self) -> dict[str, Any]:
        opaque = uuid.uuid4().hex
        frame = {
            "specVersion": "1.0",
            "type": "SYSTEM",
            "headers": {
                "topic": "ping",
                "messageId": f"ping-{opaque}",
                "contentType": "application/json",
                "time": str(int(time.time() * 1000)),
            },
            "data": json.dumps({"opaque": opaque}),
        }
        return await (await self.push(frame))

    async def disconnect(self) -> None:
        frame = {
            "specVersion": "1.0",
            "type": "SYSTEM",
            "headers": {
                "topic": "disconnect",
                "messageId": uuid.uuid4().hex,
                "contentType": "application/json",
            },
            "data": json.dumps({"reason": "connection is expired"}),
        }
        await self.wait_connected()
        await self.sockets[-1].send_str(json.dumps(frame))

    async def drop(self) -> None:
        """Close every socket without the disconnect frame (a network drop)."""
        for socket in list(self.sockets):
            await socket.close(code=1011, message=b"gateway restart")

    async def close_all(self) -> None:
        for socket in list(self.sockets):
            await socket.close()


def callback_frame(
    data: dict[str, Any], *, message_id: str, topic: str = "/v1.0/card/instances/callback"
) -> dict[str, Any]:
    """A CALLBACK frame as the gateway sends it (``data`` JSON in a string)."""
    return {
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "appId": "fake-app",
            "contentType": "application/json",
            "messageId": message_id,
            "time": str(int(time.time() * 1000)),
            "topic": topic,
        },
        "data": json.dumps(data, ensure_ascii=False),
    }
