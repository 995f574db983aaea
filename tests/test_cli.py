"""The `leadbot` command as a newcomer meets it: init, demo, serve, db upgrade, config errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, parse
from tests.conftest import TEMPLATE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBOT_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def test_init_writes_a_commented_config_and_creates_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key in [k for k in os.environ if k.startswith("LEADBOT_")]:
        monkeypatch.delenv(key)
    assert main(["init", str(tmp_path)]) == 0
    cfg = tmp_path / "leadbot.toml"
    assert "# leadbot 配置文件" in cfg.read_text(encoding="utf-8")
    assert (tmp_path / "leadbot.db").exists()
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n# 我的修改\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 0
    assert "# 我的修改" in cfg.read_text(encoding="utf-8")  # not overwritten without --force
    assert "未覆盖" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, key, zh",
    [
        (('role = "rep"\nregion = "华东"\nmanager = "chenjing"\ndaily_capacity = 20', 'role = "sales"\nregion = "华东"\nmanager = "chenjing"\ndaily_capacity = 20'), "role", "角色必须是"),
        (('provinces = ["上海", "江苏"', 'provinces = ["上海", "江苏", "火星"'), "provinces", "不是省级行政区"),
        (('provinces = ["广东", "广西"', 'provinces = ["广东", "江苏"'), "provinces", "已属于区域"),
        (("port = 8080", 'port = "八零八零"'), "port", "端口"),
        (("[database]", "[databse]"), "databse", "是否指 `database`"),
        (("daily_capacity = 15", "daily_capcity = 15"), "daily_capcity", "是否指 `daily_capacity`"),
    ],
)
def test_config_errors_name_file_line_key_and_reason(change: tuple[str, str], key: str, zh: str) -> None:
    old, new = change
    assert old in TEMPLATE
    text = TEMPLATE.replace(old, new, 1)
    with pytest.raises(ConfigError) as err:
        parse(text, "/etc/leadbot.toml", {})
    message = str(err.value)
    assert "/etc/leadbot.toml" in message and key in message and zh in message
    assert err.value.line is not None
    line = text.splitlines()[err.value.line - 1]
    assert key.split(".")[0] in line or line.startswith("[")


def test_environment_overrides_the_file() -> None:
    settings = parse(TEMPLATE, "/x/leadbot.toml", {"LEADBOT_SERVER__PORT": "9090", "LEADBOT_PLATFORMS__WECOM__SECRET": "s3cret", "LEADBOT_DATABASE_URL": "sqlite:////tmp/other.db"})
    assert settings.port == 9090
    assert settings.platforms["wecom"]["secret"] == "s3cret"
    assert settings.database_url == "sqlite:////tmp/other.db"


def test_serve_with_a_broken_config_says_why_without_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "leadbot.toml"
    cfg.write_text(TEMPLATE.replace('region = "华南"\nmanager = "huangwei"\ndaily_capacity = 10', 'region = "华中"\nmanager = "huangwei"\ndaily_capacity = 10'), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "-c", str(cfg)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert "区域 `华中` 不存在" in proc.stderr and "unknown region" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    cfg = tmp_path / "leadbot.toml"
    cfg.write_text(TEMPLATE, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "-c", str(cfg)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert "leadbot db upgrade" in proc.stderr and "Traceback" not in proc.stderr
    assert main(["db", "upgrade", "-c", str(cfg)]) == 0


def test_demo_serves_the_sandbox_with_sample_leads(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo", "--port", str(port), "--dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        banner = ""
        while time.monotonic() < deadline and f"http://127.0.0.1:{port}/sandbox/" not in banner:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
        assert f"http://127.0.0.1:{port}/sandbox/" in banner, banner + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/", timeout=10).read().decode()
        assert "leadbot 沙盒" in page
        members = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/api/members", timeout=10).read())["members"]
        assert sum(m["role"] == "rep" for m in members) == 8 and sum(m["role"] == "manager" for m in members) == 3
        # The sample leads were assigned and their cards reach the reps' chats.
        cards = 0
        for _ in range(50):
            cards = 0
            for m in members:
                msgs = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/api/messages?user={m['id']}", timeout=10).read())["messages"]
                cards += sum("card" in x for x in msgs)
            if cards >= 3:
                break
            time.sleep(0.2)
        assert cards == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
