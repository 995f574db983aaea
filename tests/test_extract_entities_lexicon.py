"""Hot-reloaded lexicon files: reload on change, at most once per interval, last good kept on errors."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from nlp.lexicon import LexiconError, LexiconFile, to_simplified, word_alternation


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text, encoding="utf-8")
    # Distinct mtimes even on coarse filesystems: set them explicitly.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def _words(data: dict[str, Any]) -> tuple[str, ...]:
    words = data["words"]
    if not isinstance(words, list):
        raise ValueError("words must be a list")
    return tuple(words)


def test_reload_after_interval_only(tmp_path: Path) -> None:
    path = tmp_path / "brands.toml"
    _write(path, 'words = ["西门子"]\n', 0)
    clock = FakeClock()
    lex = LexiconFile(path, _words, clock=clock, interval=3.0)
    assert lex.get() == ("西门子",)
    _write(path, 'words = ["西门子", "安川"]\n', 5)
    clock.now += 1.0
    assert lex.get() == ("西门子",), "looked at the file again before the interval passed"
    clock.now += 2.5
    assert lex.get() == ("西门子", "安川")


def test_broken_file_keeps_last_good_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "intents.toml"
    _write(path, 'words = ["下单"]\n', 0)
    clock = FakeClock()
    lex = LexiconFile(path, _words, clock=clock, interval=2.0)
    assert lex.get() == ("下单",)
    _write(path, 'words = ["下单", \n', 5)  # a TOML syntax error
    clock.now += 2.0
    with caplog.at_level(logging.WARNING, logger="nlp.lexicon"):
        assert lex.get() == ("下单",)
    assert "intents.toml" in caplog.text and lex.last_error
    _write(path, 'words = "not a list"\n', 10)  # parses, but the build refuses it
    clock.now += 2.0
    assert lex.get() == ("下单",)
    assert "words must be a list" in (lex.last_error or "")
    _write(path, 'words = ["下单", "签约"]\n', 15)
    clock.now += 2.0
    assert lex.get() == ("下单", "签约")
    assert lex.last_error is None


def test_first_load_failure_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    _write(path, "words = [\n", 0)
    with pytest.raises(LexiconError, match="bad.toml"):
        LexiconFile(path, _words, clock=FakeClock()).get()
    with pytest.raises(LexiconError):
        LexiconFile(tmp_path / "missing.toml", _words, clock=FakeClock()).get()


def test_json_files_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "titles.json"
    _write(path, '{"words": ["总", "工"]}', 0)
    assert LexiconFile(path, _words, clock=FakeClock()).get() == ("总", "工")


@pytest.mark.parametrize("words", [
    ["经理", "总经理", "总监", "总"],
    ["上海", "上海市", "上"],
    ["a.b", "a+b", "[x]"],
    ["单"],
])
def test_word_alternation_prefers_longest(words: list[str]) -> None:
    rx = re.compile(word_alternation(words))
    for w in words:
        assert rx.fullmatch(w)
        m = rx.match(w + "尾")
        assert m is not None and m.group(0) == w
    assert rx.fullmatch("不在表里") is None


def test_to_simplified_keeps_length() -> None:
    text = "客戶鄭經理話報價OK，Ｆull-width stays"
    out = to_simplified(text)
    assert len(out) == len(text)
    assert out.startswith("客户郑经理话报价")
    assert to_simplified("纯简体文本") == "纯简体文本"


def test_shipped_lexicons_build() -> None:
    """Every shipped rules file parses and builds (the functions that read them run once)."""
    from nlp.classify import classify_industry, classify_intents, classify_sentiment, extract_next_action
    from nlp.entities import extract_companies, extract_contacts

    assert extract_contacts("潘总", []) == [{"name": "潘", "title": "总"}]
    assert extract_companies("西门子", []) == ["西门子"]
    assert classify_industry("光伏组件厂") == "光伏"
    assert classify_intents("下单") == ["sign_intent"]
    assert classify_sentiment("很满意") == "positive"
    assert extract_next_action("记得把合同带过去") == "把合同带过去"


def test_industry_rules_reload_from_an_edited_copy(tmp_path: Path) -> None:
    """The shipped build functions work with reloads: a cue added to a copy takes effect."""
    from nlp.classify import _build_industry
    from nlp.lexicon import lexicon_path

    path = tmp_path / "industry.toml"
    shipped = lexicon_path("industry").read_text(encoding="utf-8")
    _write(path, shipped, 0)
    clock = FakeClock()
    lex = LexiconFile(path, _build_industry, clock=clock, interval=3.0)
    assert "袜机" in lex.get().label_of and lex.get().label_of["袜机"] is None
    _write(path, shipped.replace('"none" = [', '"纺织服装" = ["袜机"]\n"none" = [', 1), 5)
    clock.now += 3.0
    assert lex.get().label_of["袜机"] == "纺织服装"
