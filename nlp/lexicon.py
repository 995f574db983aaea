"""Hot-reloaded rule files: the lexicons business people tune without a restart.

Intent keywords, industry cues, titles, competitor brands and the like live in TOML (or JSON)
files under ``nlp/data/lexicon/``. A :class:`LexiconFile` turns one file into a ready-to-use
object (compiled regexes, sets) through a ``build`` function, and looks at the file's
modification time at most once every ``interval`` seconds of its injected clock. A file that
fails to parse or build keeps the last good version in service and logs why, so a typo in a
keyword list never takes extraction down.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from nlp.simplify import to_simplified  # noqa: F401  (re-exported: entities and classify use it)

log = logging.getLogger(__name__)

LEXICON_DIR = Path(__file__).parent / "data" / "lexicon"
CHECK_INTERVAL = 3.0

T = TypeVar("T")
Clock = Callable[[], float]


class LexiconError(ValueError):
    """A lexicon file could not be read or built, and there is no earlier good version."""


def read_rules(path: Path) -> dict[str, Any]:
    """Parse a TOML or JSON rules file into a dict (raises on syntax errors, naming the file)."""
    raw = path.read_bytes()
    if path.suffix == ".json":
        data = json.loads(raw.decode("utf-8"))
    else:
        data = tomllib.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: the top level must be a table/object")
    return data


class LexiconFile(Generic[T]):
    """One rules file and the object built from it, reloaded when the file changes.

    ``get()`` is cheap on the hot path: one clock call and a comparison, plus a ``stat`` at
    most once per ``interval`` seconds.
    """

    def __init__(self, path: Path | str, build: Callable[[dict[str, Any]], T], *,
                 clock: Clock = time.monotonic, interval: float = CHECK_INTERVAL) -> None:
        self.path = Path(path)
        self._build = build
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._value: T | None = None
        self._stamp: tuple[int, int] | None = None
        self._next_check = float("-inf")
        self.last_error: str | None = None

    def _file_stamp(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size)

    def _load(self, stamp: tuple[int, int]) -> None:
        try:
            value = self._build(read_rules(self.path))
        except Exception as exc:  # any mistake in a hand-edited file must not stop extraction
            self.last_error = f"{self.path.name}: {type(exc).__name__}: {exc}"
            if self._value is None:
                raise LexiconError(self.last_error) from exc
            log.warning("lexicon %s not reloaded, keeping the last good version: %s", self.path, self.last_error)
        else:
            self._value = value
            self.last_error = None
            if self._stamp is not None:
                log.info("lexicon %s reloaded", self.path)
        # Remember the stamp either way so a broken file is reported once, not every few seconds.
        self._stamp = stamp

    def get(self) -> T:
        """The current built object, reloading first if the file changed since the last look."""
        now = self._clock()
        if self._value is not None and now < self._next_check:
            return self._value
        with self._lock:
            if self._value is None or now >= self._next_check:
                self._next_check = now + self._interval
                try:
                    stamp = self._file_stamp()
                except OSError as exc:
                    if self._value is None:
                        raise LexiconError(f"{self.path}: {exc}") from exc
                    log.warning("lexicon %s unreadable, keeping the last good version: %s", self.path, exc)
                    self.last_error = str(exc)
                else:
                    if stamp != self._stamp:
                        self._load(stamp)
        assert self._value is not None
        return self._value


def word_alternation(words: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    """A regex matching any of ``words``, longest first, written as a prefix tree.

    Python's ``re`` tries the branches of ``a|b|c`` one by one; with thousands of place names
    or titles that dominates the cost. Factoring shared prefixes (经理|总经理|总监 →
    ``(?:经理|总(?:经理|监))``) lets a failing position be rejected after one character.
    """
    trie: dict[str, Any] = {}
    for w in words:
        if not w:
            continue
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        ends = "" in node
        children = [(ch, sub) for ch, sub in sorted(node.items()) if ch]
        if not children:
            return ""
        if len(children) > 1 and all(list(sub) == [""] for _, sub in children):
            body = "[" + "".join(re.escape(ch) for ch, _ in children) + "]"
            return body + "?" if ends else body
        branches = [re.escape(ch) + emit(sub) for ch, sub in children]
        if len(branches) == 1:
            return f"(?:{branches[0]})?" if ends else branches[0]
        body = "(?:" + "|".join(branches) + ")"
        return body + "?" if ends else body

    return "(?:" + emit(trie) + ")" if trie else "(?!x)x"


def lexicon_path(name: str) -> Path:
    """The path of a shipped lexicon file (``"intents"`` → ``nlp/data/lexicon/intents.toml``)."""
    return LEXICON_DIR / f"{name}.toml"


def as_list(value: Any) -> list[str]:
    """A list of non-empty strings from a TOML value that may be a list or a whitespace-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value if str(v)]
