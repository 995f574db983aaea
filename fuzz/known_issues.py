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
from decimal import DecimalException


@dataclass(frozen=True)
class KnownIssue:
    """An exception of one of ``exceptions`` with a frame in ``file``: found, reported, not yet fixed."""

    target: str
    exceptions: tuple[type[BaseException], ...]
    file: str  # repository path of the module that must change
    reproducers: tuple[str, ...]  # file names under fuzz/crashers/<target>/
    fix: str  # what the owner of ``file`` is asked to change

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this issue (its type, raised through ``file``)."""
        if not isinstance(exc, self.exceptions):
            return False
        frames = traceback.extract_tb(exc.__traceback__)
        return any(frame.filename.replace(os.sep, "/").endswith(self.file) for frame in frames)


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    # wecom_callback reaches the same ActionKey.unpack through a card-button EventKey.
    KnownIssue(
        "wecom_callback", (UnicodeEncodeError, TypeError), "handlers/actions.py",
        ("crash-card-event-non-ascii-signature",), "see the chat_commands entry for handlers/actions.py",
    ),
    KnownIssue(
        "config_parse", (TypeError, AttributeError, KeyError, RecursionError), "bot/config.py",
        ("crash-member-without-role", "crash-members-not-a-list", "crash-region-not-a-table", "crash-deep-array"),
        "parse()/_validate() must turn every wrong shape into ConfigError: a [[members]] entry without role "
        "(MemberConfig(**…) TypeError), `members = 5` (TypeError), `regions = [1]` (AttributeError), and arrays "
        "nested ~1000 deep, which make tomllib raise RecursionError (catch it beside TOMLDecodeError)",
    ),
    KnownIssue(
        "chat_commands", (DecimalException,), "handlers/stages.py",
        ("crash-stage-amount-overflow", "crash-stage-amount-nan"),
        "parse_answer() for an amount field: `9e999999` overflows in `yuan * 100` (decimal.Overflow) and `NaN` "
        "raises InvalidOperation in `yuan < 0`, and `9e999992` hangs the worker for tens of seconds in "
        "int(to_integral_value()) of a million-digit number (hang-stage-amount-huge-exponent: a hang, so it is "
        "not replayed by the tests); check is_finite() before comparing, bound the value (as "
        "leads.parse_budget_fen does, ≤ 1e12) before converting, and answer with the polite hint",
    ),
    KnownIssue(
        "chat_commands", (IndexError,), "handlers/dedupe.py",
        ("crash-dedupe-phone-minus-zero",),
        "normalize_phone('-0') (a lead form or import row): _landline() reads digits[1] of the one-digit \"0\"; "
        "return None for fewer than 2 digits (nlp/phones.py had the same bug, fixed there)",
    ),
    KnownIssue(
        "chat_commands", (UnicodeEncodeError, TypeError), "handlers/actions.py",
        ("crash-actionkey-lone-surrogate", "crash-actionkey-non-ascii-signature"),
        "ActionKey.unpack(): `packed.encode()` raises UnicodeEncodeError for a lone surrogate, which Feishu/DingTalk/"
        "sandbox JSON (\\ud800) delivers, and hmac.compare_digest raises TypeError for a non-ASCII signature part "
        "(a WeCom EventKey `accept:c1::签名`); refuse both with BadAction (encode with errors='surrogatepass', "
        "compare the UTF-8 bytes)",
    ),
)


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
