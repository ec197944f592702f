"""A loopback TCP relay that can cut a connection the moment the client sends a given command.

Used to drop a real IMAP connection to a real Dovecot exactly when ``UID STORE`` goes out,
so the client code meets a true connection loss instead of a stub raising on its behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class CuttingRelay:
    """Relays 127.0.0.1:<ephemeral> to ``target``; cuts both sides on ``cut_on`` once armed."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.cut_on: bytes | None = None
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def arm(self, command: bytes) -> None:
        """The next client chunk containing ``command`` (case-insensitive) is never delivered."""
        self.cut_on = command.upper()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        self._writers.update((client_w, server_w))

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool
        ) -> None:
            try:
                while data := await src.read(65536):
                    if upstream and self.cut_on is not None and self.cut_on in data.upper():
                        self.cut_on = None
                        self.cuts += 1
                        log.info("relay: cutting the connection on %r", data[:60])
                        for writer in (client_w, server_w):
                            writer.transport.abort()
                        return
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))
        self._writers.difference_update((client_w, server_w))
