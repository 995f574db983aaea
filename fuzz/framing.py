"""How fuzz inputs are cut into parts, shared by the targets.

Seeds must stay readable and easy to write by hand, so inputs are not decoded with
atheris' FuzzedDataProvider: a target reads an optional selector byte and then fields
separated by the ASCII record separator 0x1E, which never occurs in real payloads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

SEP = b"\x1e"


class ContractViolation(AssertionError):
    """A target returned, or refused, in a way its contract forbids (not a plain crash)."""


def fields(data: bytes, count: int) -> list[bytes]:
    """``data`` cut at the first ``count - 1`` separators; missing fields are empty."""
    parts = data.split(SEP, count - 1)
    return parts + [b""] * (count - len(parts))


def text(raw: bytes) -> str:
    """Bytes as a platform would hand them over: UTF-8, undecodable bytes as lone surrogates.

    Query strings and JSON ``\\udcxx`` escapes really do reach us as ``str`` with lone
    surrogates, so the targets must cope with them.
    """
    return raw.decode("utf-8", "surrogateescape")


def wide_text(raw: bytes) -> str:
    """Bytes read as UTF-16-LE code units: any code point from U+0000 to U+FFFF, surrogates too."""
    return raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Fail the contract when the block took longer than ``seconds``.

    The budgets are generous (instrumented code on a loaded CI runner is several times
    slower than production); libFuzzer's ``-timeout`` is the hard stop for true hangs.
    """
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    if elapsed > seconds:
        raise ContractViolation(f"{what} took {elapsed:.2f} s, budget {seconds:.2f} s")
