"""Coverage-guided fuzzing (atheris) of every parser that reads what strangers send.

Each target in ``fuzz/targets/`` runs in its own process (atheris needs one), seeded from
``fuzz/corpus/<target>/``, for a few seconds here; ``LEADBOT_FUZZ_SECONDS=600`` gives every
target ten minutes instead. A crash, a contract violation or a per-input timeout fails the
test and names the reproducer file (replay it with ``python3 -m fuzz.run TARGET FILE``).

Plain regression tests below replay every seed in-process, check that the crashes found
and fixed stay fixed, and keep the open, handed-over issues visible as strict xfails.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.crypto import CallbackRejected, FeishuCrypto, MessageCrypto
from fuzz.known_issues import KNOWN_ISSUES, KnownIssue, known_issue
from fuzz.targets import TARGETS

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
CRASHERS = ROOT / "fuzz" / "crashers"
LONG_SECONDS = int(os.environ.get("LEADBOT_FUZZ_SECONDS", "0") or 0)
# CI: about 2 s of fuzzing per target (plus ~2-5 s of instrumented start-up and seed replay), two targets
# at a time on a 2-core runner: ~35-60 s in all, depending on what else the machine runs.
SECONDS = LONG_SECONDS or 2
RUNS = -1 if LONG_SECONDS else 100_000


@dataclass(frozen=True)
class FuzzRun:
    """What one libFuzzer process did."""

    target: str
    returncode: int
    executions: int
    output: str

    def reproducers(self) -> list[str]:
        return re.findall(r"Test unit written to (\S+)", self.output)


def _fuzz(target: str, scratch: Path) -> FuzzRun:
    corpus, artifacts = scratch / target / "corpus", scratch / target / "artifacts"
    corpus.mkdir(parents=True)
    artifacts.mkdir(parents=True)
    command = [sys.executable, "-m", "fuzz.run", target, f"-runs={RUNS}", f"-max_total_time={SECONDS}",
               f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
               # a fixed seed in CI: the same inputs on every run, so a failure reproduces
               f"-seed={0 if LONG_SECONDS else 1}"]
    dictionary = ROOT / "fuzz" / "dicts" / f"{target}.dict"
    if dictionary.exists():
        command.append(f"-dict={dictionary}")
    # New inputs go to the first directory: scratch, so the checked-in seeds stay as they are.
    command += [str(corpus), str(CORPUS / target)]
    env = {k: v for k, v in os.environ.items() if k != "LEADBOT_FUZZ_STRICT"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace",
                          timeout=SECONDS + 180)
    output = done.stdout + done.stderr
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    return FuzzRun(target, done.returncode, int(executed.group(1)) if executed else 0, output)


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FuzzRun]]:
    """Every target fuzzed once, as many at a time as there are cores."""
    scratch = tmp_path_factory.mktemp("fuzz")
    with ThreadPoolExecutor(max_workers=max(1, min(len(TARGETS), os.cpu_count() or 1))) as pool:
        runs = dict(zip(TARGETS, pool.map(lambda t: _fuzz(t, scratch), TARGETS), strict=True))
    summary = {name: run.executions for name, run in runs.items()}
    print("\nfuzz executions per target:", json.dumps(summary))
    yield runs


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_target_finds_no_crash(target: str, fuzz_runs: dict[str, FuzzRun]) -> None:
    run = fuzz_runs[target]
    if run.returncode != 0:
        files = run.reproducers()
        tail = "\n".join(run.output.splitlines()[-60:])
        pytest.fail(f"fuzz target {target} failed (exit {run.returncode}); reproducer: {files or 'none written'}\n"
                    f"replay: python3 -m fuzz.run {target} {files[0] if files else '<file>'}\n{tail}")
    # The seeds alone are more than this: a run that executed nothing did not fuzz.
    assert run.executions > len(list((CORPUS / target).iterdir())), run.output[-2000:]


# ----------------------------------------------------------------------------- plain regressions
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_seed_keeps_its_contract(target: str) -> None:
    """Each seed, crashers that were fixed included, replayed in this process: no exception."""
    check = importlib.import_module(TARGETS[target].module).check
    for seed in sorted((CORPUS / target).iterdir()):
        try:
            check(seed.read_bytes())
        except Exception as exc:
            issue = known_issue(target, exc)
            raise AssertionError(f"{seed.relative_to(ROOT)}: {type(exc).__name__}: {exc}"
                                 + (f" (open issue in {issue.file}; its seed belongs in fuzz/crashers)" if issue else "")) from exc


def _reproducer_cases() -> list[object]:
    cases: list[object] = []
    for issue in KNOWN_ISSUES:
        for name in issue.reproducers:
            cases.append(pytest.param(issue, name, id=f"{issue.target}-{name}",
                                      marks=pytest.mark.xfail(strict=True, reason=f"handed over: {issue.file}: {issue.fix}")))
    return cases


@pytest.mark.parametrize(("issue", "name"), _reproducer_cases())
def test_handed_over_issue_is_fixed(issue: KnownIssue, name: str) -> None:
    """Fails (xfail) while the issue is open; XPASS (a failure, strict) once it is fixed."""
    data = (CRASHERS / issue.target / name).read_bytes()
    importlib.import_module(TARGETS[issue.target].module).check(data)


def test_deeply_nested_json_body_is_a_rejected_callback() -> None:
    """Found by fuzzing: ``[[[[…`` used to escape as RecursionError (a 500) from the JSON envelope reader."""
    body = b"[" * 100_000
    with pytest.raises(CallbackRejected):
        FeishuCrypto("kudryavka").decrypt_body(body)
    with pytest.raises(CallbackRejected):
        MessageCrypto("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b").decrypt_json_body(
            b'{"encrypt": ' + b'{"a": ' * 50_000, "sig", "1", "n")


def test_chat_lines_with_long_whitespace_runs_are_read_in_linear_time() -> None:
    """Found by fuzzing: a forwarded line of ~100 spaces took seconds in the stamp patterns
    (four optional ``\\s*`` in a row); 3,000 would have taken hours. The budgets are loose:
    this guards against the blow-up, it does not measure speed (bench/ does)."""
    from datetime import datetime, timedelta, timezone

    from fuzz.framing import within
    from nlp.chat import split_record
    from nlp.extract import extract

    now = datetime(2026, 5, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    gap = " " * 3000
    for line in (gap + "OK收到", "5月1日" + gap + "x", "[" + gap + "x", "王" + gap + "10:0x", gap + "5月1日" + gap + "10:00" + gap + "王x"):
        with within(2.0, f"split_record of a {len(line)}-character line"):
            segments = split_record(f"王经理 10:00\n{line}\n李娜 10:01\n好的", now)
        # the line is read (as content or as a header), and the record goes on after it
        assert segments[-1].speaker == "李娜" and segments[-1].text == "好的"
    with within(5.0, "extract of a forwarded chat full of blank runs"):
        extract(("王经理 10:00\n" + " " * 99 + "OK收到\n") * 70, now)


def test_a_lone_zero_group_in_a_digit_run_is_no_phone() -> None:
    """Found by fuzzing: ``0 12345678`` made the phone extractor index past a one-digit "0"
    (extract() hid it as an empty phones field)."""
    from nlp.phones import extract_phones

    assert extract_phones("0 12345678") == []
    assert extract_phones("电话 0 512 6688 1234") == ["0512-66881234"]
