"""A rep's browser session against a running claimdesk server, for tests that drive it over
real HTTP: sign in with a login link, read the page's CSRF token, act on a card."""

from __future__ import annotations

import re

import aiohttp

from connectors.web.auth import Signer, login_link
from tests.conftest import SECRET

_CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


async def claim_on_the_web(base: str, number: int, rep: str = "alice") -> None:
    """``rep`` signs in at ``base`` and claims inquiry ``number`` from the team page."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        signer = Signer(SECRET, login_max_age=600, session_max_age=600)
        signed_in = await http.get(login_link(signer, base, rep), allow_redirects=False)
        assert signed_in.status == 302
        page = await (await http.get(f"{base}/web/teams/sales")).text()
        csrf = _CSRF.search(page)
        assert csrf, "no CSRF token on the team page"
        claimed = await http.post(
            f"{base}/web/actions",
            json={"action": f"cd1:claim:{number}", "value": "", "reason": ""},
            headers={"X-CSRF-Token": csrf.group(1)},
        )
        assert claimed.status == 200, await claimed.text()
