"""Deleting operational rows that nothing reads any more, a bounded batch at a time.

Every function here deletes at most ``limit`` rows in the caller's transaction and says
where it stopped, so the caller commits between batches: SQLite holds its single write
lock for a whole transaction, and the inbox must never wait behind a long delete.

How a batch finds its rows cheaply: operational tables are appended in time order, so
their primary key is (almost) their age order. A batch reads the next ``limit`` rows by
primary key after ``after_id`` (one index range, no index on the time column needed),
deletes those that qualify and stops at the first row that is still too young: the rest
of the table is younger. A row that is old but must stay (a waiting digest item, a
pending or dead message) is stepped over and looked at again the next day.

The newest row of each table is never deleted: SQLite gives a new row ``max(id) + 1``,
so deleting the newest rows would hand their ids out again, and ids appear inside other
rows' dedupe keys (``in:<platform>:<inbox id>:reply``, the digest's id range); a reused
id would make a new message look like an old one and be dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlmodel import Session, col

from store.models import CardHandle, InboxEvent, OutboxMessage


@dataclass(frozen=True)
class Pruned:
    """What one batch did: rows deleted, the last id it looked at, and whether it is done.

    ``done`` means the batch reached rows younger than the cutoff (or the end of the
    table): nothing more to delete today. ``removed`` carries the ``extra`` values the
    caller asked for, of the deleted rows (e.g. alert keys).
    """

    deleted: int
    last_id: int
    done: bool
    removed: tuple[tuple[Any, ...], ...] = field(default=())


def prune_prefix(
    session: Session,
    table: Table,
    age: str,
    cutoff: datetime,
    after_id: int,
    limit: int,
    keep_if: ColumnElement[bool] | None,
    columns: Sequence[str] = (),
    extra: Callable[[Sequence[Sequence[Any]]], set[int]] | None = None,
) -> Pruned:
    """Delete the rows older than ``cutoff`` (by column ``age``) after ``after_id``, at most ``limit``.

    ``keep_if`` is a SQL condition under which an old row stays (checked again in the
    DELETE itself, so a row changed by another transaction meanwhile is judged as it is
    then); ``columns`` are read for ``extra``, which may name more ids to keep, and are
    returned for the deleted rows.
    """
    ident = table.c.id
    newest = session.execute(select(func.max(ident))).scalar_one_or_none()
    if newest is None:
        return Pruned(0, after_id, True)
    wanted = [ident, table.c[age]] + [table.c[c] for c in columns]
    stmt = select(*wanted).where(ident > after_id, ident < newest).order_by(ident).limit(limit)
    if keep_if is not None:
        # Read which rows must stay in the same statement (one round trip).
        stmt = stmt.add_columns(keep_if.label("keep"))
    rows = list(session.execute(stmt).all())
    done = len(rows) < limit
    candidates: list[Sequence[Any]] = []
    last = after_id
    for row in rows:
        if row[1] >= cutoff:
            done = True
            break
        last = row[0]
        if keep_if is not None and row[-1]:
            continue
        candidates.append(tuple(row))
    kept = extra(candidates) if extra is not None and candidates else set()
    chosen = [r for r in candidates if r[0] not in kept]
    if not chosen:
        return Pruned(0, last, done)
    ids = [r[0] for r in chosen]
    gone = delete(table).where(ident.in_(ids), table.c[age] < cutoff)
    if keep_if is not None:
        gone = gone.where(~keep_if)
    deleted = session.execute(gone.returning(ident)).scalars().all()
    survivors = set(deleted)
    removed = tuple(tuple(r[2 : 2 + len(columns)]) for r in chosen if r[0] in survivors)
    return Pruned(len(deleted), last, done, removed)


def prune_inbox(session: Session, cutoff: datetime, after_id: int, limit: int) -> Pruned:
    """Handled inbound events received before ``cutoff``.

    ``pending`` rows are work still to do and ``failed`` rows wait for an admin: both stay.
    The caller picks ``cutoff`` well past any platform's redelivery window, because the
    row's unique ``(platform, event_key)`` is what drops a redelivered event.
    """
    table: Table = InboxEvent.__table__  # type: ignore[attr-defined]
    keep = table.c.status != "done"
    return prune_prefix(session, table, "received_at", cutoff, after_id, limit, keep)


def prune_outbox(session: Session, cutoff: datetime, after_id: int, limit: int) -> Pruned:
    """Delivered messages queued and sent before ``cutoff``.

    ``pending`` (still to send) and ``dead`` (dead letters an admin may re-queue) stay.
    The message that carried a card whose handle is still open stays too: a platform
    adapter may read the card's buttons back from it when someone clicks (DingTalk does).
    """
    table: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
    handles: Table = CardHandle.__table__  # type: ignore[attr-defined]
    keep = (table.c.status != "sent") | (table.c.sent_at >= cutoff) | table.c.sent_at.is_(None)

    def open_cards(rows: Sequence[Sequence[Any]]) -> set[int]:
        card_ids = {r[2] for r in rows if r[3] == "card" and r[2]}
        if not card_ids:
            return set()
        still_open = set(session.execute(
            select(handles.c.card_id).where(handles.c.card_id.in_(card_ids), handles.c.state == "open")
        ).scalars())
        return {r[0] for r in rows if r[3] == "card" and r[2] in still_open}

    return prune_prefix(session, table, "created_at", cutoff, after_id, limit, keep, ("card_id", "kind"), open_cards)


def delete_card_handles(session: Session, card_ids: Sequence[str]) -> int:
    """Delete the card handles ``card_ids`` (cards nobody can act on any more); how many went."""
    total = 0
    ordered = list(card_ids)
    for i in range(0, len(ordered), 500):
        result = session.execute(
            delete(CardHandle).where(col(CardHandle.card_id).in_(ordered[i : i + 500])).returning(col(CardHandle.card_id))
        )
        total += len(result.scalars().all())
    return total
