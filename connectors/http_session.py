"""One long-lived ``aiohttp.ClientSession`` per connector (STYLE: one transport seam).

Opened by ``start`` or, since the outbox may deliver before a platform's ``start``,
on first use inside the running loop; closed by ``stop``. A closed session is
replaced on next use, so a connector survives a stop/start cycle.
"""

from __future__ import annotations

import aiohttp


class OwnedSession:
    """The session a connector owns, created lazily with the connector's total timeout."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (idempotent)."""
        self.get()

    async def stop(self) -> None:
        """Close the session, if open."""
        if self._session is not None:
            await self._session.close()
        self._session = None

    def get(self) -> aiohttp.ClientSession:
        """The open session (opened now when there is none)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session
