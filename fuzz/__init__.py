"""Coverage-guided fuzzing (atheris) of every parser that reads what strangers send.

See fuzz/README.md. Each module in ``fuzz.targets`` exposes ``check(data: bytes) -> None``,
a pure function whose contract is stated in its docstring; ``python3 -m fuzz.run TARGET``
fuzzes it, ``tests/reliability/test_fuzz_atheris.py`` runs every target briefly in CI.
"""
