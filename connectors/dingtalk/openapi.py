"""Our own asyncio client for the DingTalk OpenAPI calls claimdesk makes.

dingtalk-stream 0.24.3's helpers fetch tokens with blocking ``requests``, open a
new ``ClientSession`` per call and log-and-swallow errors (PLATFORMS.md §2.7), so
the OpenAPI is called here instead: one ``aiohttp.ClientSession`` per connector
(created by ``start``, closed by ``stop``), an access-token cache, typed errors.

Documentation relied on (stored copies, see PLATFORMS.md §2.4):
- token: ``POST /v1.0/oauth2/accessToken`` ``{appKey, appSecret}`` → ``{accessToken, expireIn}``
  (seconds); sent as header ``x-acs-dingtalk-access-token``
  (open.dingtalk.com/document/orgapp/obtain-the-access_token-of-an-internal-app).
- cards: ``POST /v1.0/card/instances/createAndDeliver`` and ``PUT /v1.0/card/instances``
  (open.dingtalk.com/document/development/create-and-deliver-cards,
  .../interactive-card-update-interface).
- robot: ``POST /v1.0/robot/groupMessages/send`` (help.dingtalk.io/open/development/the-robot-sends-a-group-message)
  and ``POST /v1.0/robot/oToMessages/batchSend``
  (help.dingtalk.io/open/development/chatbots-send-one-on-one-chat-messages-in-batches);
  ``msgParam`` is a JSON **string**.
- errors: the new-style API answers ``{"code": "...", "message": "...", "requestid": "..."}``
  with an HTTP 4xx/5xx (help.dingtalk.io/open/development/server-api-error-codes-1);
  throttling is ``Forbidden.AccessDenied.QpsLimitForApi`` (HTTP 403) or HTTP 429;
  the monthly quota is ``Forbidden.AccessDenied.ApiCountLimitForOrg``
  (dingtalk.com/qidian/help-detail-1061621972.html).

Error policy (the outbox retries, so nothing is swallowed here):
- an invalid/expired token → the cache is dropped, a new token fetched, the call
  retried **once**; a second refusal is permanent (wrong credentials);
- throttling → ``DeliveryError(retry_after=…)``; 5xx and transport errors → retryable;
- any other 4xx with a ``code`` → permanent, the code and message in the text.
Secrets (appSecret, token) never appear in logs or error texts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from connectors.channels import DeliveryError
from connectors.http_session import OwnedSession

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-acs-dingtalk-access-token"
REFRESH_MARGIN = 300.0  # seconds before expireIn that the token is renewed (the SDK uses 5 min)
THROTTLE_CODES = ("QpsLimit", "Throttling", "FlowControl")
QUOTA_CODES = ("ApiCountLimitForOrg",)
TOKEN_CODES = frozenset(
    {"InvalidAuthentication", "InvalidAccessToken", "AccessTokenExpired", "Unauthorized"}
)
THROTTLE_RETRY_AFTER = 1.0
QUOTA_RETRY_AFTER = 3600.0
SERVER_RETRY_AFTER = 2.0


@dataclass(frozen=True)
class ApiAnswer:
    """A successful OpenAPI answer (the parsed JSON body)."""

    status: int
    body: dict[str, Any]


class _TokenRejected(Exception):
    """The token was refused (internal: triggers one refresh + retry)."""


class DingTalkOpenApi:
    """The OpenAPI calls claimdesk needs, with a token cache and typed errors."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        base_url: str = "https://api.dingtalk.com",
        timeout: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._owned = OwnedSession(timeout)
        self._token = ""
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0  # observability (tests, metrics)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the session (idempotent)."""
        await self._owned.start()

    async def stop(self) -> None:
        await self._owned.stop()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (opened on first use inside the running loop)."""
        return self._owned.get()

    # -- token -------------------------------------------------------------------

    async def access_token(self, *, force: bool = False) -> str:
        """A valid token, fetched when missing, within ``REFRESH_MARGIN`` of expiry, or forced."""
        async with self._token_lock:
            if not force and self._token and self._clock() < self._token_expires:
                return self._token
            status, body = await self._send(
                "POST",
                "/v1.0/oauth2/accessToken",
                {"appKey": self._client_id, "appSecret": self._client_secret},
                token=None,
            )
            if status >= 400 or not body.get("accessToken"):
                raise _classify("accessToken", status, body, token_call=True)
            self.token_fetches += 1
            expire_in = float(body.get("expireIn") or 7200)
            self._token = str(body["accessToken"])
            self._token_expires = self._clock() + max(expire_in - REFRESH_MARGIN, expire_in / 2)
            return self._token

    def drop_token(self) -> None:
        self._token, self._token_expires = "", 0.0

    # -- transport ----------------------------------------------------------------

    async def _send(
        self, method: str, path: str, payload: dict[str, Any], *, token: str | None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers[TOKEN_HEADER] = token
        try:
            async with self.session.request(
                method, self.base_url + path, data=json.dumps(payload), headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
                retry_header = response.headers.get("Retry-After", "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"dingtalk {path}: {type(exc).__name__}") from exc
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"message": raw[:200].decode("utf-8", errors="replace")}
        if not isinstance(body, dict):
            body = {"result": body}
        if retry_header:
            body.setdefault("_retry_after", retry_header)
        return status, body

    async def call(self, method: str, path: str, payload: dict[str, Any]) -> ApiAnswer:
        """One OpenAPI call with the token; a refused token is renewed and the call retried once."""
        for attempt in (1, 2):
            token = await self.access_token(force=attempt == 2)
            status, body = await self._send(method, path, payload, token=token)
            if status < 400:
                return ApiAnswer(status, body)
            error = _classify(path, status, body)
            if isinstance(error, _TokenRejected):
                self.drop_token()
                if attempt == 1:
                    log.info("dingtalk %s: token refused, refreshing once", path)
                    continue
                raise DeliveryError(
                    f"dingtalk {path}: access token refused twice ({body.get('code', status)}); "
                    "check [dingtalk] client_id / client_secret",
                    permanent=True,
                )
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the calls ------------------------------------------------------------------

    async def create_and_deliver(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.call("POST", "/v1.0/card/instances/createAndDeliver", body)
        return answer.body

    async def update_card(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.call("PUT", "/v1.0/card/instances", body)
        return answer.body

    async def group_message(
        self, *, robot_code: str, conversation: str, msg_key: str, msg_param: dict[str, Any]
    ) -> dict[str, Any]:
        body = {
            "robotCode": robot_code,
            "openConversationId": conversation,
            "msgKey": msg_key,
            "msgParam": json.dumps(msg_param, ensure_ascii=False),
        }
        answer = await self.call("POST", "/v1.0/robot/groupMessages/send", body)
        return answer.body

    async def one_to_one(
        self, *, robot_code: str, user_ids: list[str], msg_key: str, msg_param: dict[str, Any]
    ) -> dict[str, Any]:
        body = {
            "robotCode": robot_code,
            "userIds": user_ids[:20],  # documented limit: 20 users per call
            "msgKey": msg_key,
            "msgParam": json.dumps(msg_param, ensure_ascii=False),
        }
        answer = await self.call("POST", "/v1.0/robot/oToMessages/batchSend", body)
        invalid = answer.body.get("invalidStaffIdList") or []
        if invalid and len(invalid) >= len(user_ids):
            raise DeliveryError(
                f"dingtalk oToMessages: no valid recipient ({', '.join(map(str, invalid))[:200]})",
                permanent=True,
            )
        return answer.body


def _retry_after(body: dict[str, Any], default: float) -> float:
    try:
        return max(0.0, float(body.get("_retry_after") or default))
    except (TypeError, ValueError):
        return default


def _classify(
    path: str, status: int, body: dict[str, Any], *, token_call: bool = False
) -> DeliveryError | _TokenRejected:
    """The DingTalk error as the outbox understands it."""
    code = str(body.get("code") or body.get("errcode") or "")
    message = str(body.get("message") or body.get("errmsg") or "")[:200]
    what = f"dingtalk {path}: HTTP {status} {code} {message}".strip()
    if status == 429 or any(c in code for c in THROTTLE_CODES):
        return DeliveryError(what, retry_after=_retry_after(body, THROTTLE_RETRY_AFTER))
    if any(c in code for c in QUOTA_CODES):
        return DeliveryError(what, retry_after=QUOTA_RETRY_AFTER)
    if status >= 500:
        return DeliveryError(what, retry_after=_retry_after(body, SERVER_RETRY_AFTER))
    if not token_call and (status == 401 or code in TOKEN_CODES):
        return _TokenRejected(what)
    if token_call:
        return DeliveryError(f"{what}; check [dingtalk] client_id / client_secret", permanent=True)
    return DeliveryError(what, permanent=True)
