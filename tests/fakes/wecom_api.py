"""A fake WeCom server API (qyapi) on 127.0.0.1, ephemeral port.

Answers the way developer.work.weixin.qq.com documents: HTTP 200 with JSON
``errcode``/``errmsg``. Implemented: ``gettoken`` (tokens that can be expired on
demand: 42001), ``message/send`` (markdown and ``template_card``; a card answers
with a ``response_code``), ``message/update_template_card`` (each code single
use, bound to its card's task, expiring: 60140 otherwise), ``appchat/send``,
the group robot ``webhook/send`` (20/min per key: 45009 beyond), ``agent/get``.
``click(task_id)`` mints the fresh code a click callback would carry.
Faults: ``fail(path, errcode, times)``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    """One request as received."""

    path: str
    body: dict[str, Any]
    query: dict[str, str]
    at: float


@dataclass
class TaskCard:
    """A template card as the reps see it (the latest version of every copy)."""

    task_id: str
    users: list[str]
    card: dict[str, Any]
    updates: int = 0


@dataclass
class FakeWeCom:
    """``await start()``, use ``base_url``, ``await stop()``."""

    corp_id: str = "ww-test-corp"
    secret: str = "corp-secret"
    agent_id: int = 1000002
    code_lifetime: float = 72 * 3600.0
    calls: list[Call] = field(default_factory=list)
    tasks: dict[str, TaskCard] = field(default_factory=dict)
    direct: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user -> messages
    groups: dict[str, list[str]] = field(default_factory=dict)  # chatid / robot key -> markdown
    faults: dict[str, list[int]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)  # code -> (task, issued)
    robot_sent: dict[str, list[float]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_get("/cgi-bin/agent/get", self._agent_get)
        app.router.add_post("/cgi-bin/message/send", self._send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update)
        app.router.add_post("/cgi-bin/appchat/send", self._appchat)
        app.router.add_post("/cgi-bin/webhook/send", self._robot)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls ---------------------------------------------------------

    def fail(self, path: str, errcode: int, times: int = 1) -> None:
        self.faults.setdefault(path, []).extend([errcode] * times)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def click(self, task_id: str) -> str:
        """The fresh response_code a click on ``task_id`` brings (as the callback would)."""
        return self._mint(task_id)

    def age_codes(self, seconds: float) -> None:
        self.codes = {c: (t, at - seconds) for c, (t, at) in self.codes.items()}

    def called(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    # -- helpers ---------------------------------------------------------------

    def _mint(self, task_id: str) -> str:
        code = f"rc-{next(self._ids)}"
        self.codes[code] = (task_id, time.monotonic())
        return code

    @staticmethod
    def _err(errcode: int, errmsg: str = "") -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg or f"error {errcode}"})

    async def _enter(self, request: web.Request, path: str) -> tuple[dict[str, Any], int]:
        body: dict[str, Any] = {}
        if request.method == "POST":
            body = await request.json()
        self.calls.append(Call(path, body, dict(request.query), time.monotonic()))
        queued = self.faults.get(path)
        if queued:
            return body, queued.pop(0)
        needs_token = path not in ("gettoken", "webhook/send")
        if needs_token and request.query.get("access_token") not in self.tokens:
            return body, 42001
        return body, 0

    # -- routes ----------------------------------------------------------------

    async def _gettoken(self, request: web.Request) -> web.Response:
        _, fault = await self._enter(request, "gettoken")
        if fault:
            return self._err(fault)
        q = request.query
        if q.get("corpid") != self.corp_id or q.get("corpsecret") != self.secret:
            return self._err(40001, "invalid credential")
        token = f"tok-{next(self._ids)}"
        self.tokens.add(token)
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    async def _agent_get(self, request: web.Request) -> web.Response:
        _, fault = await self._enter(request, "agent/get")
        if fault:
            return self._err(fault)
        if request.query.get("agentid") != str(self.agent_id):
            return self._err(40056, "invalid agentid")
        return web.json_response({"errcode": 0, "errmsg": "ok", "agentid": self.agent_id})

    async def _send(self, request: web.Request) -> web.Response:
        body, fault = await self._enter(request, "message/send")
        if fault:
            return self._err(fault)
        if body.get("agentid") != self.agent_id:
            return self._err(40056, "invalid agentid")
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        if not users:
            return self._err(40003, "invalid userid")
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": f"msg-{next(self._ids)}"}
        if body.get("msgtype") == "template_card":
            card = body["template_card"]
            task_id = str(card.get("task_id", ""))
            if not task_id or task_id in self.tasks:
                return self._err(40058, "task_id missing or not unique")
            self.tasks[task_id] = TaskCard(task_id, users, card)
            answer["response_code"] = self._mint(task_id)
        for user in users:
            self.direct.setdefault(user, []).append(body)
        return web.json_response(answer)

    async def _update(self, request: web.Request) -> web.Response:
        body, fault = await self._enter(request, "message/update_template_card")
        if fault:
            return self._err(fault)
        code = str(body.get("response_code", ""))
        entry = self.codes.pop(code, None)
        if entry is None or time.monotonic() - entry[1] > self.code_lifetime:
            return self._err(60140, "response_code used or expired")
        task = self.tasks[entry[0]]
        if body.get("atall") == 1 and "template_card" in body:
            task.card = body["template_card"]
            task.updates += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": []})

    async def _appchat(self, request: web.Request) -> web.Response:
        body, fault = await self._enter(request, "appchat/send")
        if fault:
            return self._err(fault)
        if body.get("msgtype") != "markdown":
            return self._err(40008, "invalid message type")
        self.groups.setdefault(str(body.get("chatid")), []).append(body["markdown"]["content"])
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _robot(self, request: web.Request) -> web.Response:
        body, fault = await self._enter(request, "webhook/send")
        if fault:
            return self._err(fault)
        key = request.query.get("key", "")
        now = time.monotonic()
        recent = [t for t in self.robot_sent.get(key, []) if now - t < 60]
        if len(recent) >= 20:
            return self._err(45009, "api freq out of limit")
        self.robot_sent[key] = [*recent, now]
        self.groups.setdefault(f"robot:{key}", []).append(body["markdown"]["content"])
        return web.json_response({"errcode": 0, "errmsg": "ok"})
