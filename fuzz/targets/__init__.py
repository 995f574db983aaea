"""The fuzz targets and the libFuzzer options each one runs with.

A target is a module with ``check(data: bytes) -> None``; ``INSTRUMENT`` lists the
packages whose code coverage guides the fuzzer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One harness: its module, the longest input worth trying, the per-input hard timeout."""

    name: str
    max_len: int
    timeout_s: int
    summary: str

    @property
    def module(self) -> str:
        return f"fuzz.targets.{self.name}"


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("wecom_callback", 4096, 10, "WeCom verify + decrypt + normalise, forged/replayed/stale"),
        Target("wecom_xml", 8192, 10, "decrypted-XML parser: entity bombs, deep nesting, invalid UTF-8"),
        Target("feishu_dingtalk", 4096, 10, "Feishu and DingTalk AES-256-CBC envelopes and signatures"),
        Target("formula_compile", 4096, 10, "formula tokenize/parse/type-check/compile"),
        Target("formula_eval", 4096, 10, "compiled formulas evaluated on fuzzed facts"),
        Target("config_parse", 8192, 10, "bot.config.parse on arbitrary TOML and LEADBOT_* overrides"),
        Target("extract", 8192, 20, "nlp extraction on arbitrary unicode and long run-ons"),
        Target("chat_commands", 2048, 10, "chat command classification and parsing in handlers"),
        Target("feishu_events", 4096, 10, "Feishu decrypted events, card clicks, merged forwards → InboundEvent"),
        Target("dingtalk_events", 4096, 10, "DingTalk robot messages, chat records, card clicks, Stream frames → InboundEvent"),
    )
}

# Code whose coverage guides the search (third-party libraries stay uninstrumented: faster).
INSTRUMENT: tuple[str, ...] = ("bot", "handlers", "nlp", "cards", "scheduler", "store")

