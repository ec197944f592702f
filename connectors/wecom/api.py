"""Our own aiohttp client for WeCom's server API (qyapi): token cache, errcodes, one session.

wechatpy's clients are synchronous (``requests``), so only its crypto is used
(see ``callback.py``); every HTTP call is made here with one long-lived
``aiohttp.ClientSession`` (``start``/``stop``), in the manner of gidgethub's
one-transport seam.

- Token: ``GET /cgi-bin/gettoken?corpid&corpsecret`` -> ``access_token`` and
  ``expires_in`` (7,200 s), cached until five minutes before it expires
  (developer.work.weixin.qq.com/document/path/91039). An answer of 42001 (token
  expired) or 40014 (invalid token) drops the cache, fetches a new token once and
  retries the call once.
- Errors: WeCom answers HTTP 200 with ``errcode``/``errmsg``
  (document/path/90313, the global error codes). Rate and concurrency limits
  (45009, 45033, 45011) and ``-1`` (system busy) are retryable with a pause;
  transport errors, timeouts and HTTP 5xx are retryable; every other errcode is
  permanent (a wrong userid, chatid, agent, IP not trusted ... needs an admin).
- The token travels in the query string, so URLs are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from connectors.channels import DeliveryError
from connectors.http_session import OwnedSession

log = logging.getLogger(__name__)

TOKEN_INVALID = frozenset({42001, 40014})
RATE_LIMITED = {45009: 60.0, 45033: 2.0, 45011: 60.0, -1: 2.0}
CODE_USED = 60140  # response_code used or expired (update_template_card)
TOKEN_MARGIN = 300.0


class WeComApiError(DeliveryError):
    """WeCom answered an ``errcode`` other than 0."""

    def __init__(
        self,
        path: str,
        errcode: int,
        errmsg: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(
            f"wecom {path}: errcode {errcode} {errmsg[:200]}",
            retry_after=retry_after,
            permanent=permanent,
        )
        self.errcode = errcode
        self.errmsg = errmsg


def classify(path: str, errcode: int, errmsg: str) -> WeComApiError:
    """An errcode as the outbox worker understands it (retry, pause or give up)."""
    if errcode in RATE_LIMITED:
        return WeComApiError(path, errcode, errmsg, retry_after=RATE_LIMITED[errcode])
    if errcode == CODE_USED:
        # The channel handles it (next code or a fresh card); not permanent by itself.
        return WeComApiError(path, errcode, errmsg)
    return WeComApiError(path, errcode, errmsg, permanent=True)


class WeComApi:
    """The qyapi HTTP client: ``await start()``, ``await call(...)``, ``await stop()``."""

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        base_url: str = "https://qyapi.weixin.qq.com",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self._base = base_url.rstrip("/")
        self._clock = clock
        self._owned = OwnedSession(timeout)
        self._token = ""
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the session (idempotent)."""
        await self._owned.start()

    async def stop(self) -> None:
        await self._owned.stop()

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._owned.get()

    async def _http(
        self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None
    ) -> dict[str, Any]:
        url = f"{self._base}/cgi-bin/{path}"
        try:
            async with self.session.request(method, url, params=params, json=body) as response:
                if response.status >= 500 or response.status == 429:
                    raise DeliveryError(
                        f"wecom {path}: HTTP {response.status}",
                        retry_after=5.0 if response.status == 429 else None,
                    )
                if response.status >= 400:
                    raise DeliveryError(f"wecom {path}: HTTP {response.status}", permanent=True)
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"wecom {path}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise DeliveryError(f"wecom {path}: answer is not a JSON object")
        return data

    async def token(self, *, refresh: bool = False) -> str:
        """The cached access token (fetched when missing, expired, or ``refresh``)."""
        async with self._token_lock:
            if refresh or not self._token or self._clock() >= self._token_until:
                data = await self._http(
                    "GET", "gettoken", {"corpid": self.corp_id, "corpsecret": self._secret}, None
                )
                errcode = int(data.get("errcode", 0) or 0)
                if errcode:
                    raise classify("gettoken", errcode, str(data.get("errmsg", "")))
                self._token = str(data.get("access_token", ""))
                expires = float(data.get("expires_in", 7200) or 7200)
                self._token_until = self._clock() + max(0.0, expires - TOKEN_MARGIN)
                log.info("wecom token fetched", extra={"expires_in": expires})
            return self._token

    async def call(
        self, path: str, body: dict[str, Any] | None = None, *, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` (or GET when ``None``) to ``/cgi-bin/<path>`` with the token."""
        method = "GET" if body is None else "POST"
        for attempt in (1, 2):
            token = await self.token(refresh=attempt == 2)
            data = await self._http(method, path, {**(params or {}), "access_token": token}, body)
            errcode = int(data.get("errcode", 0) or 0)
            if errcode in TOKEN_INVALID and attempt == 1:
                log.info("wecom token rejected, refreshing once", extra={"errcode": errcode})
                continue
            if errcode:
                raise classify(path, errcode, str(data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    async def robot(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a group robot webhook (``/cgi-bin/webhook/send?key=``; no token)."""
        data = await self._http("POST", "webhook/send", {"key": key}, body)
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            raise classify("webhook/send", errcode, str(data.get("errmsg", "")))
        return data


class RecipientLimiter:
    """Sliding windows per recipient: WeCom drops app messages beyond 30/min and 1,000/h
    to one member *silently* (document/path/90236), so we must never send them."""

    def __init__(
        self,
        windows: tuple[tuple[float, int], ...] = ((60.0, 30), (3600.0, 1000)),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._windows = windows
        self._clock = clock
        self._sent: dict[str, list[float]] = {}

    def wait_for(self, users: list[str]) -> float:
        """Seconds until every one of ``users`` may get one more message (0: now)."""
        now = self._clock()
        longest = max((w for w, _ in self._windows), default=0.0)
        wait = 0.0
        for user in users:
            times = [t for t in self._sent.get(user, []) if now - t < longest]
            self._sent[user] = times
            for window, limit in self._windows:
                recent = [t for t in times if now - t < window]
                if len(recent) >= limit:
                    wait = max(wait, recent[len(recent) - limit] + window - now)
        return wait

    def record(self, users: list[str]) -> None:
        now = self._clock()
        for user in users:
            self._sent.setdefault(user, []).append(now)
