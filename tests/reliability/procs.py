"""Real ``leadbot serve`` processes for fault tests and the scale-out benchmark.

Each server is ``python3 -m bot.cli serve -c <toml>`` in its own process (so ``kill -9``
is real), on a loopback port, with WeCom pointed at a fake API running in the test's
event loop. Several servers may share one database: the same ``[server] secret`` makes
button payloads signed by one valid on the others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import TEMPLATE
from tests.wecom_fakes import section, with_wecom_userids

ROOT = Path(__file__).resolve().parents[2]
SECRET = "reliability-secret-0123456789abcdef"
# Every member of the template organisation gets a WeCom userid, so load spreads over
# twelve people and stays under WeCom's 30 messages/min per member.
MEMBERS = ("admin", "chenjing", "huangwei", "zhaolei", "zhangwei", "lina", "wangqiang", "liuyang", "zhoumin", "wujie", "sunli", "mahao")
USERIDS = {m: f"wx_{m}" for m in MEMBERS}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, db_url: str, wecom_base: str, port: int, name: str = "leadbot") -> Path:
    """A leadbot.toml for one server process; the database URL goes in the file too."""
    text = with_wecom_userids(TEMPLATE, USERIDS)
    text = text.replace('secret = ""', f'secret = "{SECRET}"', 1).replace("port = 8080", f"port = {port}", 1)
    text = text.replace('url = "sqlite:///leadbot.db"', f'url = "{db_url}"', 1)
    path = directory / f"{name}.toml"
    path.write_text(text + section(wecom_base), encoding="utf-8")
    return path


def upgrade(config: Path) -> None:
    """``leadbot db upgrade -c config`` (idempotent)."""
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade", "-c", str(config)], cwd=ROOT, check=True,
                   capture_output=True, env=_env())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Server:
    """One ``leadbot serve`` subprocess."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Spawn the process (returns at once; see :meth:`wait_ready`)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "-c", str(self.config)], cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        """Until ``/healthz`` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                async with http.get(f"{self.url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise TimeoutError(f"server on {self.port} not ready: {self.log_path.read_text(errors='replace')[-2000:]}")

    def kill9(self) -> None:
        """SIGKILL: no clean-up, no flush, exactly like a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()


def long_tests() -> bool:
    """Long variants run with ``LEADBOT_LONG_TESTS=1``."""
    return os.environ.get("LEADBOT_LONG_TESTS", "") not in ("", "0")
