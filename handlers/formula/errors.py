"""The one exception of the formula language, its limits, and position bookkeeping."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

# Limits keep a hostile or careless formula from costing more than a config reload should.
MAX_SOURCE_CHARS = 2000
MAX_DEPTH = 32
MAX_NODES = 500
MAX_NUMBER_DIGITS = 34  # the precision of our decimal context: literals are exact or refused


class FormulaError(ValueError):
    """A formula could not be compiled or evaluated.

    ``message_zh`` is shown to managers first, ``message_en`` follows in parentheses;
    ``line`` and ``column`` are 1-based and already shifted to the config file when the
    loader passed ``line_offset``/``column_offset``; ``origin`` names the file.
    """

    def __init__(
        self,
        message_zh: str,
        message_en: str,
        *,
        line: int = 1,
        column: int = 1,
        origin: str = "",
    ) -> None:
        self.message_zh = message_zh
        self.message_en = message_en
        self.line = line
        self.column = column
        self.origin = origin
        super().__init__(self.full_text())

    def full_text(self) -> str:
        """The message as printed: origin, line and column, Chinese, then English."""
        where = f"第{self.line}行第{self.column}列"
        if self.origin:
            where = f"{self.origin} {where}"
        return f"{where}: {self.message_zh} ({self.message_en})"

    def __str__(self) -> str:
        return self.full_text()


@dataclass(frozen=True)
class SourceMap:
    """Turns offsets in the formula text into (line, column) in the file it came from."""

    source: str
    origin: str = ""
    line_offset: int = 0
    column_offset: int = 0
    line_starts: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        starts = [0] + [index + 1 for index, char in enumerate(self.source) if char == "\n"]
        object.__setattr__(self, "line_starts", tuple(starts))

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of ``offset``, shifted into the config file."""
        starts = self.line_starts
        index = bisect_right(starts, offset) - 1
        line = index + 1
        column = offset - starts[index] + 1
        # Only the first formula line shares its file line with `key = "`.
        if line == 1:
            column += self.column_offset
        return line + self.line_offset, column

    def error(self, offset: int, message_zh: str, message_en: str) -> FormulaError:
        """Build a FormulaError pointing at ``offset``."""
        line, column = self.position(offset)
        return FormulaError(message_zh, message_en, line=line, column=column, origin=self.origin)
