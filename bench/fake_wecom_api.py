"""The fake WeCom API (tests/wecom_fakes.py) in a process of its own, for benchmarks.

Run by ``bench_scaleout.py`` so that what the servers send during a run is neither served
by the load generator's event loop (it would slow the generator down) nor counted in its
CPU time. Prints its base URL as the first line of stdout; on SIGTERM prints one JSON line
with what it accepted and what it silently dropped (past 30/min per member), then exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.context import SystemClock
from tests.wecom_fakes import FakeWeComApi


async def main() -> None:
    api = FakeWeComApi(SystemClock())  # type: ignore[arg-type]
    api.token_lifetime = 7200
    await api.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(api.base_url(), flush=True)
    await stop.wait()
    print(json.dumps({"accepted": len(api.sent), "dropped": len(api.dropped), "send_calls": api.send_attempts}), flush=True)
    assert api.server is not None
    await api.server.close()


if __name__ == "__main__":
    asyncio.run(main())
