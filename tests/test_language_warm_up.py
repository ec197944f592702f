"""The server loads the language model as it starts (in a thread), so the first inquiry
does not pay about a second of CPU for it. Run in a fresh interpreter: in the test
process an earlier test may have loaded the model already."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from aiohttp.test_utils import TestServer
    from bench.bench_intake import settings_for
    from bot.app import Service
    from routing import language

    async def main() -> None:
        service = await Service.create(settings_for(sys.argv[1]))
        assert language._load_model.cache_info().currsize == 0
        server = TestServer(service.web_app(background=True), host="127.0.0.1")
        await server.start_server()
        deadline = time.monotonic() + 20
        while language._load_model.cache_info().currsize == 0:
            assert time.monotonic() < deadline, "the model was not loaded at start"
            await asyncio.sleep(0.05)
        await server.close()
        await service.close()
        print("warm")

    asyncio.run(main())
    """
)


def test_the_server_loads_the_language_model_as_it_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"sqlite+aiosqlite:///{tmp_path / 'claimdesk.db'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("warm")
