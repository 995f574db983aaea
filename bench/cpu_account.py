"""CPU accounting for benchmarks that run several processes on one machine (Linux ``/proc``).

A throughput figure alone cannot say whether a run was limited by our code or by the cores:
on a 2-core machine the load generator, PostgreSQL and every server share the same CPUs.
:func:`snapshot` reads user+system CPU time of chosen processes (all their threads) and of
the PostgreSQL processes serving one database, plus the machine totals from ``/proc/stat``; the difference of two
snapshots says where the CPU went during a run, and how much of it went to processes that
are not part of the benchmark at all (``other``: someone else using the machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def process_cpu(pid: int) -> float | None:
    """User+system CPU seconds of ``pid`` (every thread), or None when it has gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: the fields follow the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL processes working for ``database``: its client backends and autovacuum
    workers, plus the shared ones (postmaster, WAL writer, checkpointer…), but not backends
    of other databases (someone else's tests on the same server)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if words[:3] == ["postgres:", "autovacuum", "worker"]:
            db = words[3] if len(words) > 3 else ""
        elif len(words) >= 4 and words[0] == "postgres:" and (words[3].startswith("[local]") or "(" in words[3]):
            db = words[2]  # "postgres: user database host(port) state"
        else:
            db = database  # shared background process
        if db == database:
            pids.append(int(entry.name))
    return pids


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


@dataclass
class Snapshot:
    """CPU seconds per process at one moment."""

    groups: dict[str, dict[int, float]] = field(default_factory=dict)
    busy: float = 0.0
    total: float = 0.0


def snapshot(groups: dict[str, list[int]], pg_database: str = "") -> Snapshot:
    """CPU seconds of each named group of pids, plus a ``pg`` group: the PostgreSQL processes
    serving ``pg_database`` (none when empty)."""
    snap = Snapshot()
    all_groups = {**groups, "pg": postgres_pids(pg_database)} if pg_database else groups
    for name, pids in all_groups.items():
        snap.groups[name] = {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}
    snap.busy, snap.total = machine_cpu()
    return snap


def used(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per group between two snapshots, plus ``other`` and ``idle`` of the machine.

    A process that appeared in between counts from zero (a PostgreSQL backend opened during
    the run); one that exited in between is lost, so take ``after`` before stopping servers.
    """
    out: dict[str, float] = {}
    for name, now in after.groups.items():
        then = before.groups.get(name, {})
        out[name] = sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())
    busy = after.busy - before.busy
    out["other"] = max(0.0, busy - sum(out.values()))
    out["idle"] = (after.total - before.total) - busy
    return out
