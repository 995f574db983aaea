"""``bot.config.parse`` on arbitrary TOML text and ``LEADBOT_*`` overrides.

Contract of :func:`check`: for any text and environment, ``parse`` returns ``Settings``
or raises ``ConfigError`` (whose message names the file), within 2 s: a broken
``leadbot.toml`` must be refused with a reason at start-up and on reload, never with a
traceback that takes the server down or leaves the last good rules unclear.

Input: ``toml 0x1E environment``. The TOML text is UTF-8 (``bot.config.load`` refuses
anything else before ``parse``; undecodable bytes are replaced here). The environment
is ``NAME=value`` lines; names without the ``LEADBOT_`` prefix get it.
"""

from __future__ import annotations

from bot.config import ConfigError, parse
from fuzz.framing import ContractViolation, fields, within

ORIGIN = "leadbot.toml"


def environment(raw: bytes) -> dict[str, str]:
    """``NAME=value`` lines as an environment (values may be empty)."""
    env: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\n"):
        name, _, value = line.partition("=")
        if name:
            env[name if name.startswith("LEADBOT_") else f"LEADBOT_{name}"] = value
    return env


def _check(data: bytes) -> None:
    toml_raw, env_raw = fields(data, 2)
    try:
        parse(toml_raw.decode("utf-8", "replace"), ORIGIN, environment(env_raw))
    except ConfigError as error:
        if ORIGIN not in str(error):
            raise ContractViolation(f"ConfigError does not name the file: {error}") from None


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(2.0, "config parse"):
        _check(data)
