"""Summarise py-spy ``--format raw`` profiles: where a process spent its CPU samples.

Run: ``python3 bench/pyspy_summary.py PROFILE.raw [PROFILE.raw …] [--top 15]``

Each raw line is ``frame;frame;…;leaf COUNT`` with frames written ``function (file:line)``.
Two views are printed: *inclusive* time of our own functions (a frame counted once per
stack, so a caller includes its callees) and *self* time of any function (the leaf), which
together say which request path is expensive and what inside it burns the CPU.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
# py-spy prints paths relative to sys.path: ours start with one of the project's packages.
OURS = tuple(f"{d.name}/" for d in Path(ROOT).iterdir() if d.is_dir() and (d / "__init__.py").exists())
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    """Sample counts aggregated over one or more raw files."""

    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_time: Counter[str] = field(default_factory=Counter)


def _name(frame: str) -> tuple[str, bool]:
    """``function (short/path.py)`` and whether it is our code (not the stdlib or a package)."""
    m = _FRAME.match(frame)
    if m is None:
        return frame, False
    path = m.group("file")
    ours = path.startswith(ROOT) or path.startswith(OURS)
    for marker in ("site-packages/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.removeprefix(ROOT + "/")
    return f"{m.group('func')} ({path})", ours


def load(paths: list[Path]) -> Profile:
    """Aggregate raw profiles (several processes of one run add up)."""
    prof = Profile()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            prof.samples += count
            seen: set[str] = set()
            frames = stack.split(";")
            for frame in frames:
                name, ours = _name(frame)
                if ours and name not in seen:
                    seen.add(name)
                    prof.inclusive[name] += count
            prof.self_time[_name(frames[-1])[0]] += count
    return prof


def report(prof: Profile, top: int = 15) -> list[str]:
    """Lines of text: the top inclusive (ours) and top self functions, as % of samples."""
    if prof.samples == 0:
        return ["  (no samples)"]
    lines = [f"  {prof.samples} samples; inclusive, our code:"]
    lines += [f"    {100 * n / prof.samples:5.1f}%  {name}" for name, n in prof.inclusive.most_common(top)]
    lines.append("  self (leaf) time:")
    lines += [f"    {100 * n / prof.samples:5.1f}%  {name}" for name, n in prof.self_time.most_common(top)]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    print("\n".join(report(load(args.files), args.top)))


if __name__ == "__main__":
    main()
