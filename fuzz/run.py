"""Run one fuzz target under atheris (libFuzzer): ``python3 -m fuzz.run TARGET [libFuzzer args]``.

Examples::

    python3 -m fuzz.run formula_compile -max_total_time=600 /tmp/formula fuzz/corpus/formula_compile
    python3 -m fuzz.run extract fuzz/crashers/extract/crash-…   # replay one input

libFuzzer writes new interesting inputs into the FIRST corpus directory: give it a scratch
directory first and the seed corpus second, so the checked-in seeds stay as they are.
``-max_len`` and ``-timeout`` default to the target's values in ``fuzz.targets.TARGETS``.
``python3 -m fuzz.run --list`` prints the targets.
"""

from __future__ import annotations

import importlib
import sys

import atheris

from fuzz.known_issues import tolerant
from fuzz.targets import INSTRUMENT, TARGETS


def main(argv: list[str]) -> None:
    """Instrument our packages, import the target, hand the rest of ``argv`` to libFuzzer."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        if len(argv) >= 2 and argv[1] == "--list":
            for target in TARGETS.values():
                print(f"{target.name:16} {target.summary}")
            return
        sys.exit(f"usage: python3 -m fuzz.run TARGET [libFuzzer args]; targets: {', '.join(TARGETS)}")
    target = TARGETS[argv[1]]
    options = argv[2:]
    if not any(o.startswith("-max_len=") for o in options):
        options.append(f"-max_len={target.max_len}")
    if not any(o.startswith("-timeout=") for o in options):
        options.append(f"-timeout={target.timeout_s}")
    # Only code imported inside this block is instrumented, so the target (and through it
    # our packages) must not have been imported before.
    with atheris.instrument_imports(include=list(INSTRUMENT)):
        module = importlib.import_module(target.module)
    atheris.Setup([f"{argv[0]}:{target.name}", *options], tolerant(target.name, module.check))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
