"""A fake DingTalk OpenAPI on 127.0.0.1 (ephemeral port), plus the Stream gateway's routes.

Shapes follow the documentation cited in ``connectors/dingtalk/openapi.py``:
``POST /v1.0/oauth2/accessToken`` → ``{accessToken, expireIn}``; card
``createAndDeliver`` (idempotent by ``outTrackId``: a second call with the same id
updates nothing and delivers nothing new) and ``PUT /v1.0/card/instances``; robot
``groupMessages/send`` and ``oToMessages/batchSend`` (``msgParam`` a JSON string).
Errors are ``{"code", "message", "requestid"}`` with an HTTP 4xx/5xx.

Faults: ``expire_tokens()`` (every issued token becomes invalid → 401
``InvalidAuthentication``), ``fail(path, status, code, times)`` (e.g. 403
``Forbidden.AccessDenied.QpsLimitForApi`` or 500).

``gateway`` (``tests/fakes/dingtalk_gateway.py``) is served on the same port, since
``[dingtalk] api_base_url`` drives both the OpenAPI and the Stream open call.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.dingtalk_gateway import FakeGateway

CLIENT_ID = "dingtestclient"
CLIENT_SECRET = "test-secret-do-not-log"


@dataclass
class Fault:
    """A planned failure of the next call(s) to a path."""

    status: int
    code: str
    message: str = "fault injected"
    times: int = 1


@dataclass
class FakeDingTalk:
    """The fake OpenAPI + gateway; ``await start()``, use ``base_url``, ``await stop()``."""

    expire_in: int = 7200
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # outTrackId -> instance
    deliveries: list[dict[str, Any]] = field(
        default_factory=list
    )  # one per card that reached a group
    updates: list[dict[str, Any]] = field(default_factory=list)
    group_messages: list[dict[str, Any]] = field(default_factory=list)
    direct_messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    groups_without_robot: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.gateway = FakeGateway(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        self._runner: web.AppRunner | None = None
        self._n = itertools.count(1)
        self.base_url = ""
        self.tokens_issued = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1.0/oauth2/accessToken", self._token)
        app.router.add_post("/v1.0/card/instances/createAndDeliver", self._create_and_deliver)
        app.router.add_put("/v1.0/card/instances", self._update)
        app.router.add_post("/v1.0/robot/groupMessages/send", self._group)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._direct)
        self.gateway.install(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self.gateway.ws_url = f"ws://127.0.0.1:{port}/connect"

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- faults ------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def fail(self, path: str, status: int, code: str, *, times: int = 1) -> None:
        self.faults.setdefault(path, []).append(Fault(status, code, times=times))

    def calls_to(self, path: str) -> list[tuple[str, str, int]]:
        return [c for c in self.calls if c[1] == path]

    # -- helpers -----------------------------------------------------------------------

    def _error(self, request: web.Request, status: int, code: str, message: str) -> web.Response:
        self.calls.append((request.method, request.path, status))
        return web.json_response(
            {"code": code, "message": message, "requestid": uuid.uuid4().hex}, status=status
        )

    def _planned(self, request: web.Request) -> web.Response | None:
        queue = self.faults.get(request.path) or []
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return self._error(request, fault.status, fault.code, fault.message)

    async def _authorized(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        if request.headers.get("x-acs-dingtalk-access-token", "") not in self.valid_tokens:
            return None, self._error(request, 401, "InvalidAuthentication", "不合法的access_token")
        planned = self._planned(request)
        if planned is not None:
            return None, planned
        try:
            body = await request.json()
        except ValueError:
            return None, self._error(request, 400, "InvalidParameter", "body is not JSON")
        if not isinstance(body, dict):
            return None, self._error(request, 400, "InvalidParameter", "body is not an object")
        self.calls.append((request.method, request.path, 200))
        return body, None

    # -- routes ------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appKey") != CLIENT_ID or body.get("appSecret") != CLIENT_SECRET:
            return self._error(
                request, 400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret"
            )
        planned = self._planned(request)
        if planned is not None:
            return planned
        self.calls.append((request.method, request.path, 200))
        token = f"token-{next(self._n)}"
        self.valid_tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"accessToken": token, "expireIn": self.expire_in})

    async def _create_and_deliver(self, request: web.Request) -> web.Response:
        body, error = await self._authorized(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        for key in ("cardTemplateId", "outTrackId", "openSpaceId"):
            if not body.get(key):
                return self._error(request, 400, f"param.{key}Empty", f"param.{key}Empty")
        params = (body.get("cardData") or {}).get("cardParamMap") or {}
        if any(not isinstance(v, str) for v in params.values()):
            return self._error(request, 400, "param.cardParamMapInvalid", "values must be strings")
        space = str(body["openSpaceId"])
        if not space.startswith("dtv1.card//IM_GROUP."):
            return self._error(request, 400, "param.openSpaceIdInvalid", "param.openSpaceIdInvalid")
        conversation = space.removeprefix("dtv1.card//IM_GROUP.")
        track = str(body["outTrackId"])
        if conversation in self.groups_without_robot:
            result = {
                "outTrackId": track,
                "deliverResults": [
                    {
                        "spaceType": "IM_GROUP",
                        "spaceId": conversation,
                        "success": False,
                        "errorMsg": "robot not in group",
                    }
                ],
            }
            return web.json_response({"success": True, "result": result})
        if track not in self.cards:
            self.cards[track] = {"params": dict(params), "conversation": conversation, "body": body}
            self.deliveries.append({"outTrackId": track, "conversation": conversation})
        result = {
            "outTrackId": track,
            "deliverResults": [
                {
                    "spaceType": "IM_GROUP",
                    "spaceId": conversation,
                    "success": True,
                    "carrierId": f"carrier-{track}",
                }
            ],
        }
        return web.json_response({"success": True, "result": result})

    async def _update(self, request: web.Request) -> web.Response:
        body, error = await self._authorized(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        track = str(body.get("outTrackId") or "")
        card = self.cards.get(track)
        if card is None:
            return self._error(request, 400, "param.cardNotExist", "card instance not found")
        params = (body.get("cardData") or {}).get("cardParamMap") or {}
        if (body.get("cardUpdateOptions") or {}).get("updateCardDataByKey"):
            card["params"].update(params)
        else:
            card["params"] = dict(params)
        self.updates.append({"outTrackId": track, "params": dict(params)})
        return web.json_response({"success": True, "result": True})

    async def _group(self, request: web.Request) -> web.Response:
        body, error = await self._authorized(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        param = json.loads(body["msgParam"])  # a JSON string, per the documentation
        self.group_messages.append({**body, "param": param})
        return web.json_response({"processQueryKey": uuid.uuid4().hex})

    async def _direct(self, request: web.Request) -> web.Response:
        body, error = await self._authorized(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        param = json.loads(body["msgParam"])
        self.direct_messages.append({**body, "param": param})
        return web.json_response(
            {
                "processQueryKey": uuid.uuid4().hex,
                "invalidStaffIdList": [],
                "flowControlledStaffIdList": [],
            }
        )
