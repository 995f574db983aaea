"""Crashes found by fuzzing in code the fuzz harnesses do not own, handed over with a reproducer.

While such an issue is open, the fuzzer treats an input that reproduces it as
uninteresting (so a run can still find the next bug instead of stopping at the same
one every time); ``LEADBOT_FUZZ_STRICT=1`` turns that off. Each issue has a reproducer
under ``fuzz/crashers/<target>/`` that ``tests/reliability/test_fuzz_atheris.py`` replays
as a strict xfail: when the fix lands the test XPASSes, fails, and the entry here (and the
xfail) must go, and the reproducer moves into the seed corpus as a regression seed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownIssue:
    """An exception of one of ``exceptions`` with a frame in ``file``: found, reported, not yet fixed."""

    target: str
    exceptions: tuple[type[BaseException], ...]
    file: str  # repository path of the module that must change
    reproducers: tuple[str, ...]  # file names under fuzz/crashers/<target>/
    fix: str  # what the owner of ``file`` is asked to change
    # Where the exception surfaces when that is not ``file`` itself: a harness check that
    # stands for a later step (the inbox storing an event as UTF-8) blames the module that
    # built the value, but the traceback ends in the harness.
    raised_in: str | None = None

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this issue (its type, raised through ``raised_in`` or ``file``)."""
        if not isinstance(exc, self.exceptions):
            return False
        where = self.raised_in or self.file
        frames = traceback.extract_tb(exc.__traceback__)
        return any(frame.filename.replace(os.sep, "/").endswith(where) for frame in frames)


# Open issues, newest last. Fixed ones are gone: their reproducers are regress-* seeds in
# fuzz/corpus/<target>/ with a plain regression test (see fuzz/README.md, "What fuzzing found").
KNOWN_ISSUES: tuple[KnownIssue, ...] = ()


def known_issue(target: str, exc: BaseException) -> KnownIssue | None:
    """The open issue ``exc`` reproduces for ``target``, if any."""
    return next((i for i in KNOWN_ISSUES if i.target == target and i.matches(exc)), None)


def tolerant(target: str, check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``check`` that lets open, handed-over issues pass (unless LEADBOT_FUZZ_STRICT=1)."""
    if os.environ.get("LEADBOT_FUZZ_STRICT") == "1":
        return check

    def run(data: bytes) -> None:
        try:
            check(data)
        except Exception as exc:
            if known_issue(target, exc) is None:
                raise

    return run
