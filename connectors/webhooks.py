"""Inbound webhooks: ``POST /webhooks/{name}`` from contact forms and shop platforms.

Order of checks, so bad input costs little and stores nothing:
size (413; the body is read to its end or to the limit, however slowly it
arrives) -> authentication (401) -> body parse (JSON or form-encoded; 415/400)
-> field mapping and validation (422 naming the fields). Only then is the
intake called; it answers 202 with the inquiry id.

Authentication, one of:

- **timestamped signature** (recommended): ``X-Claimdesk-Timestamp: <unix
  seconds>`` and ``X-Claimdesk-Signature: sha256=<hex>``, the HMAC-SHA256 of
  ``timestamp + "." + body`` with the webhook's secret; refused when the
  timestamp is more than ``TIMESTAMP_TOLERANCE`` seconds away from our clock
  either way (as Slack and Stripe do), so a captured request cannot be replayed
  later;
- **body-only signature**: the HMAC-SHA256 of the raw body, no timestamp
  header (for senders that cannot do better);
- the webhook's **token** in ``X-Claimdesk-Token`` / ``Authorization: Bearer``.

Duplicates (decided by the intake, see ``bot.interfaces.webhook_intake``): the same
``Idempotency-Key`` with the same body is the same inquiry (202, ``duplicate:
true``); the same key with another body is a 409; an identical body within
the dedupe window is the same inquiry whatever its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from config.schema import WebhookSettings
from connectors.safe_decode import BadInput, ascii_header, json_of, text_of
from routing.addresses import address_problem

log = logging.getLogger(__name__)

_MAX_FIELD = 20_000
_READ_CHUNK = 64 * 1024
TIMESTAMP_TOLERANCE = 300  # seconds, either way: a 5-minute window


@dataclass(frozen=True)
class InboundForm:
    """A validated webhook submission, mapped to claimdesk's fields."""

    webhook: str
    email: str
    name: str
    subject: str
    message: str
    company: str = ""
    country: str = ""
    phone: str = ""
    language: str = ""
    dedupe_key: str = ""  # set by programmatic callers; a webhook request leaves it empty
    idempotency_key: str = ""  # the sender's ``Idempotency-Key``
    body_sha256: str = ""  # hex SHA-256 of the raw body, for key and body dedupe
    fields: dict[str, Any] = field(default_factory=dict)
    category: str = ""  # ``[webhooks.fields] category``: routes ``when.category`` rules


@dataclass(frozen=True)
class IntakeReceipt:
    """What the intake answers: the inquiry number and whether it existed already."""

    inquiry_id: int
    duplicate: bool


class WebhookRejected(Exception):
    """A request we refuse, with the HTTP status and the reason shown to the caller."""

    def __init__(self, status: int, detail: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = dict(fields or {})


def sign_body(secret: str, body: bytes, timestamp: int | str | None = None) -> str:
    """The signature header value a sender computes: ``sha256=<hex>``.

    With ``timestamp`` (unix seconds) the HMAC covers ``timestamp + "." + body``
    (the recommended scheme); without it, the body alone.
    """
    signed = body if timestamp is None else str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _check_signature(request: web.Request, hook: WebhookSettings, body: bytes, now: float) -> bool:
    given = ascii_header(request.headers.get("X-Claimdesk-Signature", "")).strip().lower()
    if not given:
        return False
    stamp = request.headers.get("X-Claimdesk-Timestamp")
    if stamp is None:
        expected = sign_body(hook.secret, body)
    else:
        stamp = stamp.strip()
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise WebhookRejected(401, "X-Claimdesk-Timestamp must be unix seconds")
        if abs(now - int(stamp)) > TIMESTAMP_TOLERANCE:
            raise WebhookRejected(
                401,
                f"X-Claimdesk-Timestamp is more than {TIMESTAMP_TOLERANCE} s from our clock "
                "(replayed, or the sender's clock is wrong)",
            )
        expected = sign_body(hook.secret, body, stamp)
    return hmac.compare_digest(given.encode(), expected.encode())


def _authenticate(request: web.Request, hook: WebhookSettings, body: bytes, now: float) -> None:
    if hook.secret and _check_signature(request, hook, body, now):
        return
    if hook.token:
        given = ascii_header(request.headers.get("X-Claimdesk-Token", ""))
        auth = ascii_header(request.headers.get("Authorization", ""))
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given and hmac.compare_digest(given.encode(), hook.token.encode()):
            return
    raise WebhookRejected(401, "missing or invalid signature/token")


def _pick(data: Mapping[str, Any], path: str) -> str:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if node is None:
        return ""
    if isinstance(node, list):
        node = ", ".join(str(x) for x in node)
    return str(node).strip()


def _parse_body(request: web.Request, body: bytes) -> dict[str, Any]:
    ctype = request.content_type
    try:
        if ctype in ("application/json", "text/json") or ctype.endswith("+json"):
            parsed = json_of(body, request.charset)
            if not isinstance(parsed, dict):
                raise WebhookRejected(400, "JSON body must be an object")
            return parsed
        if ctype == "multipart/form-data":
            raise WebhookRejected(
                415, "multipart uploads are not accepted; send JSON or form-urlencoded"
            )
        if ctype == "application/x-www-form-urlencoded":
            from urllib.parse import parse_qsl

            return dict(parse_qsl(text_of(body, request.charset), keep_blank_values=True))
    except BadInput as exc:
        raise WebhookRejected(400, str(exc)) from None
    raise WebhookRejected(
        415, f"unsupported Content-Type {ctype[:60]!r}; send application/json or form-urlencoded"
    )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however it is split into packets; 413 as soon as it passes ``limit``.

    ``StreamReader.read(n)`` returns what is buffered (at least one byte), not ``n``
    bytes: a body arriving in two packets would be cut short after the first.
    """
    if request.content_length is not None and request.content_length > limit:
        raise WebhookRejected(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def map_fields(
    hook: WebhookSettings,
    data: Mapping[str, Any],
    *,
    idempotency_key: str = "",
    body_sha256: str = "",
) -> InboundForm:
    """Apply the field mapping; 422 naming every missing or invalid field."""
    mapping = hook.fields
    values = {name: _pick(data, getattr(mapping, name)) for name in type(mapping).model_fields}
    problems: dict[str, str] = {}
    if not values["email"]:
        problems[mapping.email] = "required: the customer's email address"
    elif address_problem(values["email"]):  # routing.addresses: the one address check
        problems[mapping.email] = "not an email address"
    if not values["message"] and not values["subject"]:
        problems[mapping.message] = "required: the inquiry text (or a subject)"
    for name, value in values.items():
        if len(value) > _MAX_FIELD:
            problems[getattr(mapping, name)] = f"longer than {_MAX_FIELD} characters"
    if problems:
        raise WebhookRejected(422, "invalid fields", problems)
    return InboundForm(
        webhook=hook.name,
        email=values["email"],
        name=values["name"],
        subject=values["subject"],
        message=values["message"],
        company=values["company"],
        country=values["country"][:2].upper() if len(values["country"]) == 2 else values["country"],
        phone=values["phone"],
        language=values["language"],
        category=values["category"],
        idempotency_key=idempotency_key,
        body_sha256=body_sha256,
        fields={k: v for k, v in data.items() if isinstance(v, str | int | float | bool)},
    )


def check_webhook(
    request: web.Request, hook: WebhookSettings, body: bytes, *, now: float | None = None
) -> InboundForm:
    """Authenticate and validate one webhook request whose ``body`` was read."""
    _authenticate(request, hook, body, time.time() if now is None else now)
    data = _parse_body(request, body)
    idem = request.headers.get("Idempotency-Key", "").strip()
    if len(idem) > 150:
        raise WebhookRejected(400, "Idempotency-Key longer than 150 characters")
    if not idem.isascii() or not idem.isprintable():
        raise WebhookRejected(400, "Idempotency-Key must be printable ASCII")
    return map_fields(
        hook, data, idempotency_key=idem, body_sha256=hashlib.sha256(body).hexdigest()
    )


Intake = Callable[[InboundForm], Awaitable[IntakeReceipt]]


def webhook_routes(
    hooks: Mapping[str, WebhookSettings],
    intake: Intake,
    admission: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> list[web.RouteDef]:
    """``POST /webhooks/{name}`` for the configured webhooks. ``admission``: a place the
    request holds from when its body has been read until it is answered (the intake's cap
    on requests in flight): a burst waits at the door before any of its CPU work (the
    signature, parsing, validation), and a slow sender holds no place while its body
    trickles in."""

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hook = hooks.get(name)
        if hook is None:
            return web.json_response({"error": f"no webhook named {name!r}"}, status=404)
        try:
            body = await read_body(request, hook.max_body_bytes)
        except WebhookRejected as exc:
            return _refused(name, exc)
        async with admission() if admission is not None else contextlib.nullcontext():
            try:
                form = check_webhook(request, hook, body)
                receipt = await intake(form)  # may refuse too: a reused key is a 409
            except WebhookRejected as exc:
                return _refused(name, exc)
        return web.json_response(
            {"inquiry": receipt.inquiry_id, "duplicate": receipt.duplicate, "status": "accepted"},
            status=202,
        )

    return [web.post("/webhooks/{name}", handle)]


def _refused(name: str, exc: WebhookRejected) -> web.Response:
    log.info("webhook refused", extra={"webhook": name, "status": exc.status, "detail": exc.detail})
    body: dict[str, Any] = {"error": exc.detail}
    if exc.fields:
        body["fields"] = exc.fields
    return web.json_response(body, status=exc.status)
