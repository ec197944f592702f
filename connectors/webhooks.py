"""Inbound webhooks: ``POST /webhooks/{name}`` from contact forms and shop platforms.

Order of checks, so bad input costs little and stores nothing:
size (413) -> authentication (401: HMAC-SHA256 of the raw body in
``X-Claimdesk-Signature: sha256=<hex>``, or the webhook's token in
``X-Claimdesk-Token`` / ``Authorization: Bearer``) -> body parse (JSON or
form-encoded; 415/400) -> field mapping and validation (422 naming the fields).
Only then is the intake called; it answers 202 with the inquiry id, the same
id again for a duplicate (same ``Idempotency-Key``, or the same body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from config.schema import WebhookSettings
from routing.addresses import address_problem

log = logging.getLogger(__name__)

_MAX_FIELD = 20_000


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
    dedupe_key: str = ""
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


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value a sender computes: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _authenticate(request: web.Request, hook: WebhookSettings, body: bytes) -> None:
    if hook.secret:
        given = request.headers.get("X-Claimdesk-Signature", "")
        if given and hmac.compare_digest(given.strip().lower(), sign_body(hook.secret, body)):
            return
    if hook.token:
        given = request.headers.get("X-Claimdesk-Token", "")
        auth = request.headers.get("Authorization", "")
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


async def _parse_body(request: web.Request, body: bytes) -> dict[str, Any]:
    ctype = request.content_type
    if ctype in ("application/json", "text/json") or ctype.endswith("+json"):
        try:
            parsed = json.loads(body.decode(request.charset or "utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WebhookRejected(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise WebhookRejected(400, "JSON body must be an object")
        return parsed
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        from urllib.parse import parse_qsl

        if ctype == "multipart/form-data":
            raise WebhookRejected(
                415, "multipart uploads are not accepted; send JSON or form-urlencoded"
            )
        try:
            pairs = parse_qsl(body.decode(request.charset or "utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise WebhookRejected(400, "form body is not valid UTF-8") from None
        return dict(pairs)
    raise WebhookRejected(
        415, f"unsupported Content-Type {ctype!r}; send application/json or form-urlencoded"
    )


def map_fields(hook: WebhookSettings, data: Mapping[str, Any], dedupe_key: str) -> InboundForm:
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
        dedupe_key=dedupe_key,
        fields={k: v for k, v in data.items() if isinstance(v, str | int | float | bool)},
    )


async def read_webhook(request: web.Request, hook: WebhookSettings) -> InboundForm:
    """Read, authenticate and validate one webhook request (raises ``WebhookRejected``)."""
    limit = hook.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise WebhookRejected(413, f"body larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise WebhookRejected(413, f"body larger than {limit} bytes")
    _authenticate(request, hook, body)
    data = await _parse_body(request, body)
    idem = request.headers.get("Idempotency-Key", "").strip()
    if len(idem) > 150:
        raise WebhookRejected(400, "Idempotency-Key longer than 150 characters")
    dedupe = (
        f"webhook:{hook.name}:key:{idem}"
        if idem
        else f"webhook:{hook.name}:sha256:{hashlib.sha256(body).hexdigest()}"
    )
    return map_fields(hook, data, dedupe)


Intake = Callable[[InboundForm], Awaitable[IntakeReceipt]]


def webhook_routes(hooks: Mapping[str, WebhookSettings], intake: Intake) -> list[web.RouteDef]:
    """``POST /webhooks/{name}`` for the configured webhooks."""

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hook = hooks.get(name)
        if hook is None:
            return web.json_response({"error": f"no webhook named {name!r}"}, status=404)
        try:
            form = await read_webhook(request, hook)
        except WebhookRejected as exc:
            log.info(
                "webhook refused",
                extra={"webhook": name, "status": exc.status, "detail": exc.detail},
            )
            body: dict[str, Any] = {"error": exc.detail}
            if exc.fields:
                body["fields"] = exc.fields
            return web.json_response(body, status=exc.status)
        receipt = await intake(form)
        return web.json_response(
            {"inquiry": receipt.inquiry_id, "duplicate": receipt.duplicate, "status": "accepted"},
            status=202,
        )

    return [web.post("/webhooks/{name}", handle)]
