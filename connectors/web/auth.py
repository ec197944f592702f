"""Rep sign-in for the web inbox: signed login links, signed session cookies, CSRF tokens.

``claimdesk web-link REP`` prints a link carrying a signed, time-limited token
(itsdangerous, salted for login). Opening it sets an HttpOnly, SameSite=Lax
session cookie (signed, salted for sessions). Every state-changing request
must also carry the session's CSRF token (``X-CSRF-Token`` header or
``csrf`` form field), derived from the session by HMAC.

One-click links (in notification emails, see ``connectors.web.one_click``) carry
a token salted for themselves: the rep, the inquiry, the action and an expiry
instant taken from the application's clock (not itsdangerous' wall-clock
``max_age``), so the expiry follows the same clock as the SLA and tests can
move it.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

COOKIE = "claimdesk_session"


class Signer:
    """Signs and checks login tokens and session cookies with the configured secret key."""

    def __init__(self, secret_key: str, *, login_max_age: int, session_max_age: int) -> None:
        if len(secret_key) < 16:
            raise ValueError("security.secret_key must be at least 16 characters")
        self._secret = secret_key.encode()
        self._login = URLSafeTimedSerializer(secret_key, salt="claimdesk.login")
        self._session = URLSafeTimedSerializer(secret_key, salt="claimdesk.session")
        self._one_click = URLSafeSerializer(secret_key, salt="claimdesk.one_click")
        self.login_max_age = login_max_age
        self.session_max_age = session_max_age

    def login_token(self, rep_id: str) -> str:
        return self._login.dumps({"rep": rep_id})

    def check_login_token(self, token: str) -> str | None:
        if not token.isascii():  # ours are ASCII; anything else is forged or garbled
            return None
        try:
            data = self._login.loads(token, max_age=self.login_max_age)
        except (SignatureExpired, BadSignature):
            return None
        rep = data.get("rep") if isinstance(data, dict) else None
        return rep if isinstance(rep, str) else None

    def session_cookie(self, rep_id: str) -> str:
        return self._session.dumps({"rep": rep_id})

    def check_session(self, cookie: str) -> str | None:
        if not cookie.isascii():
            return None
        try:
            data = self._session.loads(cookie, max_age=self.session_max_age)
        except (SignatureExpired, BadSignature):
            return None
        rep = data.get("rep") if isinstance(data, dict) else None
        return rep if isinstance(rep, str) else None

    def one_click_token(self, rep_id: str, inquiry_id: int, action: str, expires: int) -> str:
        """A link token: ``rep_id`` may ``action`` ("open" | "claim") ``inquiry_id`` until the
        Unix time ``expires``. Deterministic, so a retried email carries the same link."""
        return self._one_click.dumps({"r": rep_id, "i": inquiry_id, "a": action, "e": expires})

    def check_one_click(self, token: str, now: int) -> tuple[str, int, str] | None:
        """``(rep, inquiry, action)`` of a valid, unexpired token; None otherwise."""
        if not token.isascii():
            return None
        try:
            data = self._one_click.loads(token)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        rep, inquiry, action, expires = data.get("r"), data.get("i"), data.get("a"), data.get("e")
        if not (
            isinstance(rep, str)
            and isinstance(inquiry, int)
            and isinstance(action, str)
            and isinstance(expires, int)
        ):
            return None
        return (rep, inquiry, action) if now < expires else None

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self._secret, b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, cookie: str, token: str) -> bool:
        # compare_digest raises TypeError on non-ASCII str: a garbled header is a mismatch
        if not (token and token.isascii() and cookie.isascii()):
            return False
        return hmac.compare_digest(self.csrf_token(cookie).encode(), token.encode())


def safe_next(path: str, default: str = "/web/") -> str:
    """``path`` when it is one of our own pages (same origin, under ``/web/``), else ``default``:
    never an open redirect (no scheme, no ``//host``, no backslash tricks)."""
    ok = path.startswith("/web/") and "//" not in path and "\\" not in path and ":" not in path
    return path if ok else default


def login_link(signer: Signer, base_url: str, rep_id: str) -> str:
    return f"{base_url.rstrip('/')}/web/login?token={signer.login_token(rep_id)}"
