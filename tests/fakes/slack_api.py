"""A fake Slack Web API (and Socket Mode endpoint) on 127.0.0.1, ephemeral port.

It implements the methods claimdesk uses with the response shapes of Slack's
Web API reference (docs.slack.dev/reference/methods/*): every answer is JSON
with ``ok``; errors are ``{"ok": false, "error": "<code>"}`` with HTTP 200,
except rate limiting (HTTP 429, ``Retry-After`` seconds, ``error: ratelimited``).
Messages live in per-channel lists so a test can read what a channel shows
(``messages``/``message``), with their ``metadata`` (returned by
``conversations.history`` only with ``include_all_metadata``), every call is
recorded (``calls``), and faults can be planned: ``fail(method, status=429,
retry_after=1)``, ``every_nth`` 429s, 500s, ``delay`` (slow answers/timeouts),
expiring trigger ids. A fault either refuses the call before anything is done
(``mode="refuse"``, or ``"hang"``: no answer for a while, nothing done) or is
*ambiguous*: the call is carried out and then the answer hangs
(``"accept_hang"``), the connection drops (``"accept_drop"``) or a 500 comes
back (``"accept_500"``). ``hold(method)`` carries out the next call and keeps
its answer until ``release()`` (``held`` is set once it was accepted), for tests
that kill the caller meanwhile. ``chaos(methods, rate, seed)`` gives a random
share of calls a random fault of every kind.

Socket Mode: ``apps.connections.open`` returns a ``ws://`` URL on this server;
the websocket says ``hello`` and ``push_interactive`` sends an envelope and
waits for the app's ack (``{"envelope_id": …, "payload": …}``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_USER = "UBOTCLAIM"


@dataclass
class Call:
    """One Web API call as received."""

    method: str
    args: dict[str, Any]
    token: str
    at: float  # loop time when received
    status: int = 200


@dataclass
class Fault:
    """A planned failure of the next call(s) of a method."""

    status: int = 429
    retry_after: float = 1.0
    error: str = "ratelimited"
    times: int = 1
    mode: str = "refuse"  # refuse | hang | accept_hang | accept_drop | accept_500 | hold
    hang: float = 30.0  # seconds without an answer (hang modes)


CHAOS_MODES = ("429", "500", "hang", "accept_hang", "accept_drop", "accept_500")


@dataclass
class FakeSlack:
    """The fake server; ``await start()``, use ``base_url``, ``await stop()``."""

    token: str = "xoxb-test-token"
    app_token: str = "xapp-test-token"
    channels: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # id -> {"is_member": bool, "name": str}
    users: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # id -> {"email":..., "name":...}
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    nth_faults: dict[str, tuple[int, Fault]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    trigger_ttl: float = 3.0
    messages_by_channel: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[str, float] = field(default_factory=dict)
    acks: list[dict[str, Any]] = field(default_factory=list)
    chaos_methods: frozenset[str] = frozenset()
    chaos_rate: float = 0.0
    chaos_hang: float = 2.0
    faults_injected: list[tuple[str, str]] = field(default_factory=list)  # (method, mode)

    def __post_init__(self) -> None:
        self._chaos = random.Random(0)
        self.held = asyncio.Event()
        self._release = asyncio.Event()
        self._ts = itertools.count(1)
        self._counts: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.port = 0

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- test controls -------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: float = 1.0,
        error: str = "ratelimited",
        times: int = 1,
    ) -> None:
        self.faults.setdefault(method, []).append(Fault(status, retry_after, error, times))

    def fail_ambiguously(
        self, method: str, mode: str, *, hang: float = 30.0, times: int = 1
    ) -> None:
        """Carry out the next call(s) of ``method``, then fail the answer (``accept_hang``,
        ``accept_drop``, ``accept_500``): the caller cannot tell whether it happened."""
        self.faults.setdefault(method, []).append(Fault(500, 0.0, "", times, mode=mode, hang=hang))

    def hold(self, method: str) -> None:
        """Carry out the next call of ``method`` and keep its answer until ``release()``."""
        self.held.clear()
        self._release.clear()
        self.faults.setdefault(method, []).append(Fault(200, 0.0, "", 1, mode="hold"))

    def release(self) -> None:
        self._release.set()

    def chaos(self, methods: set[str], rate: float, *, seed: int = 0, hang: float = 2.0) -> None:
        """Fail a ``rate`` share of calls of ``methods`` with a random fault of every kind
        (429, 500, hang before acting, and acted-then-hang/drop/500)."""
        self.chaos_methods, self.chaos_rate, self.chaos_hang = frozenset(methods), rate, hang
        self._chaos = random.Random(seed)

    def fail_every(self, method: str, n: int, *, retry_after: float = 1.0) -> None:
        """Every ``n``-th call of ``method`` gets a 429 with ``Retry-After``."""
        self.nth_faults[method] = (n, Fault(429, retry_after))

    def new_trigger(self) -> str:
        trigger = f"{next(self._ts)}.{uuid.uuid4().hex[:8]}.trigger"
        self.triggers[trigger] = asyncio.get_running_loop().time()
        return trigger

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.status == 200]

    def messages(self, channel: str, *, top_level: bool = True) -> list[dict[str, Any]]:
        found = self.messages_by_channel.get(channel, [])
        return [m for m in found if not top_level or "thread_ts" not in m]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages_by_channel.get(channel, []) if m.get("thread_ts") == ts]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        return next(m for m in self.messages_by_channel.get(channel, []) if m["ts"] == ts)

    # -- Web API -------------------------------------------------------------

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                form = await request.post()
                for key, value in form.items():
                    text = str(value)
                    if key in ("blocks", "view", "metadata") and text.startswith(("[", "{")):
                        args[key] = json.loads(text)
                    else:
                        args[key] = text
        return args

    def _fault_for(self, method: str) -> Fault | None:
        self._counts[method] = self._counts.get(method, 0) + 1
        planned = self.faults.get(method)
        if planned:
            fault = planned[0]
            fault.times -= 1
            if fault.times <= 0:
                planned.pop(0)
            return fault
        nth = self.nth_faults.get(method)
        if nth and self._counts[method] % nth[0] == 0:
            return nth[1]
        if method in self.chaos_methods and self._chaos.random() < self.chaos_rate:
            kind = self._chaos.choice(CHAOS_MODES)
            if kind == "429":
                return Fault(429, 0.2)
            if kind == "500":
                return Fault(500, 0.0, "")
            return Fault(500, 0.0, "", mode=kind, hang=self.chaos_hang)
        return None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await self._args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or str(
            args.get("token", "")
        )
        call = Call(method, args, token, asyncio.get_running_loop().time())
        self.calls.append(call)
        if method in self.delays:
            await asyncio.sleep(self.delays[method])
        fault = self._fault_for(method)
        if fault is not None and fault.mode != "refuse":
            self.faults_injected.append((method, fault.mode))
            return await self._ambiguous(fault, method, args, token, request, call)
        if fault is not None:
            self.faults_injected.append((method, str(fault.status)))
            call.status = fault.status
            if fault.status == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={
                        "Retry-After": str(
                            int(fault.retry_after) if fault.retry_after >= 1 else fault.retry_after
                        )
                    },
                )
            if fault.status >= 500:
                return web.Response(
                    status=fault.status,
                    text="<html>upstream error</html>",
                    content_type="text/html",
                )
            return web.json_response({"ok": False, "error": fault.error})
        result, status = await self._handle(method, args, token, request)
        return web.json_response(result, status=status)

    async def _handle(
        self, method: str, args: dict[str, Any], token: str, request: web.Request
    ) -> tuple[dict[str, Any], int]:
        expected = self.app_token if method == "apps.connections.open" else self.token
        if token != expected:
            return {"ok": False, "error": "invalid_auth"}, 200
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}, 404
        result: dict[str, Any] = await handler(args, request)
        return result, 200

    async def _ambiguous(
        self,
        fault: Fault,
        method: str,
        args: dict[str, Any],
        token: str,
        request: web.Request,
        call: Call,
    ) -> web.StreamResponse:
        if fault.mode == "hang":  # nothing done; the caller times out
            call.status = 504
            await asyncio.sleep(fault.hang)
            return web.Response(status=504, text="upstream timeout")
        result, status = await self._handle(method, args, token, request)
        call.status = 200 if result.get("ok") else status  # it happened: calls_of() sees it
        if fault.mode == "hold":
            self.held.set()
            await self._release.wait()
            return web.json_response(result, status=status)
        if fault.mode == "accept_hang":
            await asyncio.sleep(fault.hang)
            return web.json_response(result, status=status)
        if fault.mode == "accept_drop":
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("fake slack dropped the connection")
        return web.Response(
            status=500, text="<html>upstream error</html>", content_type="text/html"
        )

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _channel_error(self, channel: str) -> dict[str, Any] | None:
        if channel.startswith("D"):
            return None
        info = self.channels.get(channel)
        if info is None:
            return {"ok": False, "error": "channel_not_found"}
        if not info.get("is_member", True):
            return {"ok": False, "error": "not_in_channel"}
        return None

    async def _m_api_test(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {"ok": True, "args": args}

    async def _m_auth_test(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.test/",
            "team": "Fake Workspace",
            "user": "claimdesk",
            "team_id": "T0FAKE",
            "user_id": BOT_USER,
            "bot_id": "B0CLAIM",
            "is_enterprise_install": False,
        }

    @staticmethod
    def _blocks_error(blocks: Any) -> dict[str, Any] | None:
        """Slack's ``invalid_blocks`` for what its Block Kit validation refuses (the rules
        our renderer could break): over 50 blocks, over 25 elements in an actions block,
        an action id repeated inside one block, a select with both or neither of
        ``options`` / ``option_groups``."""
        if isinstance(blocks, str):
            blocks = json.loads(blocks or "[]")
        if not isinstance(blocks, list) or len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        for block in blocks:
            elements = list(block.get("elements") or [])
            if block.get("accessory"):
                elements.append(block["accessory"])
            ids = [e["action_id"] for e in elements if isinstance(e, dict) and "action_id" in e]
            if len(ids) != len(set(ids)) or (block.get("type") == "actions" and len(elements) > 25):
                return {"ok": False, "error": "invalid_blocks"}
            for e in elements:
                select = isinstance(e, dict) and e.get("type") == "static_select"
                if select and ("options" in e) == ("option_groups" in e):
                    return {"ok": False, "error": "invalid_blocks"}
        return None

    async def _m_chat_postMessage(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel) or self._blocks_error(args.get("blocks", []))
        if error:
            return error
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": "B0CLAIM",
            "ts": ts,
            "text": args.get("text", ""),
            "blocks": args.get("blocks", []),
        }
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        metadata = args.get("metadata")
        if metadata:
            if not isinstance(metadata, dict) or not metadata.get("event_type"):
                return {"ok": False, "error": "invalid_metadata_format"}
            message["metadata"] = {
                "event_type": str(metadata["event_type"]),
                "event_payload": dict(metadata.get("event_payload") or {}),
            }
        self.messages_by_channel.setdefault(channel, []).append(message)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return {"ok": True, "channel": channel, "ts": ts, "message": shown}

    async def _m_conversations_history(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        """Top-level messages newest first, ``oldest``/``latest`` exclusive, ``limit`` (max
        999) and cursor paging; ``metadata`` only with ``include_all_metadata``."""
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or 1e12)
        limit = max(1, min(999, int(args.get("limit") or 100)))
        offset = int(str(args.get("cursor") or "0").removeprefix("off:") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("true", "1")
        found = [
            m
            for m in reversed(self.messages_by_channel.get(channel, []))
            if m.get("thread_ts", m["ts"]) == m["ts"] and oldest < float(m["ts"]) < latest
        ]
        page = found[offset : offset + limit]
        shown = [{k: v for k, v in m.items() if k != "metadata" or with_metadata} for m in page]
        more = offset + limit < len(found)
        return {
            "ok": True,
            "messages": shown,
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": f"off:{offset + limit}" if more else ""},
        }

    async def _m_chat_update(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        error = self._channel_error(channel) or self._blocks_error(args.get("blocks", []))
        if error:
            return error
        found = next((m for m in self.messages_by_channel.get(channel, []) if m["ts"] == ts), None)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        found.update(
            text=args.get("text", found["text"]),
            blocks=args.get("blocks", found["blocks"]),
            edited={"user": BOT_USER, "ts": self._next_ts()},
        )
        return {"ok": True, "channel": channel, "ts": ts, "text": found["text"], "message": found}

    async def _m_chat_postEphemeral(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": args.get("user"),
                "text": args.get("text", ""),
                "blocks": args.get("blocks", []),
                "message_ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    async def _m_conversations_open(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        users = str(args.get("users", ""))
        if not users or any(u not in self.users for u in users.split(",")):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users.replace(",", "")[1:12].upper()}}

    async def _m_conversations_info(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        info = self.channels.get(channel)
        if info is None:
            return {"ok": False, "error": "channel_not_found"}
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": info.get("name", channel.lower()),
                "is_channel": True,
                "is_member": bool(info.get("is_member", True)),
            },
        }

    async def _m_users_lookupByEmail(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        email = str(args.get("email", "")).lower()
        for uid, user in self.users.items():
            if str(user.get("email", "")).lower() == email:
                return {"ok": True, "user": self._user(uid)}
        return {"ok": False, "error": "users_not_found"}

    async def _m_users_info(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        uid = str(args.get("user", ""))
        if uid not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self._user(uid)}

    def _user(self, uid: str) -> dict[str, Any]:
        user = self.users[uid]
        return {
            "id": uid,
            "team_id": "T0FAKE",
            "name": user.get("name", uid),
            "real_name": user.get("name", uid),
            "is_bot": False,
            "profile": {
                "email": user.get("email", ""),
                "real_name": user.get("name", uid),
                "display_name": user.get("name", uid),
            },
        }

    def _check_view(self, view: Any) -> dict[str, Any] | None:
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        if len(view["title"].get("text", "")) > 24:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {
                    "messages": [
                        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
                    ]
                },
            }
        return None

    async def _m_views_open(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        trigger = str(args.get("trigger_id", ""))
        issued = self.triggers.get(trigger)
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if asyncio.get_running_loop().time() - issued > self.trigger_ttl:
            return {"ok": False, "error": "expired_trigger_id"}
        bad = self._check_view(args.get("view"))
        if bad:
            return bad
        view_id = f"V{next(self._ts):08d}"
        view = {
            **args["view"],
            "id": view_id,
            "hash": f"{time.time():.0f}.{uuid.uuid4().hex[:8]}",
            "team_id": "T0FAKE",
        }
        self.views[view_id] = view
        return {"ok": True, "view": view}

    async def _m_views_update(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        view_id = str(args.get("view_id", ""))
        current = self.views.get(view_id)
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        bad = self._check_view(args.get("view"))
        if bad:
            return bad
        view = {
            **args["view"],
            "id": view_id,
            "hash": f"{time.time():.0f}.{uuid.uuid4().hex[:8]}",
            "team_id": "T0FAKE",
        }
        self.views[view_id] = view
        return {"ok": True, "view": view}

    async def _m_apps_connections_open(
        self, args: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket?ticket={uuid.uuid4().hex}"}

    # -- Socket Mode ---------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0CLAIM"},
            }
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                self.acks.append(data)
                waiter = self._ack_waiters.pop(str(data.get("envelope_id", "")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def wait_connected(self, within: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self._sockets:
            if loop.time() > deadline:
                raise TimeoutError("no socket mode connection")
            await asyncio.sleep(0.02)

    async def push_interactive(
        self, payload: dict[str, Any], *, within: float = 5.0
    ) -> dict[str, Any]:
        """Send an ``interactive`` envelope; returns the app's ack message."""
        await self.wait_connected()
        envelope_id = str(uuid.uuid4())
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[envelope_id] = waiter
        await self._sockets[0].send_json(
            {
                "envelope_id": envelope_id,
                "payload": payload,
                "type": "interactive",
                "accepts_response_payload": payload.get("type") == "view_submission",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return await asyncio.wait_for(waiter, within)
