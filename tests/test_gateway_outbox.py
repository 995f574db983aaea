"""store/outbox.py claims: per-recipient order barrier, next claimable time, one-statement enqueue."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from store import outbox
from store.db import Database

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)


def _queue(session: Session, key: str, recipient: str, at: datetime) -> bool:
    return outbox.enqueue(session, platform="wecom", recipient=recipient, member_id=None, kind="text",
                          payload='{"text": "x"}', dedupe_key=key, now=at)


def test_a_backing_off_message_holds_back_later_ones_to_the_same_person_only(db_url: str) -> None:
    db = Database(db_url)
    try:
        def setup(s: Session) -> list[bool]:
            queued = [_queue(s, f"a{i}", "A", T0) for i in range(3)] + [_queue(s, f"b{i}", "B", T0) for i in range(2)]
            return queued + [_queue(s, "a0", "A", T0)]  # the same cause again: nothing new

        assert db.transaction(setup) == [True] * 5 + [False]
        now = T0 + timedelta(seconds=1)

        def back_off_first_of_a(s: Session) -> None:
            first = outbox.claim_due(s, now, 1, skip_locked=not db.is_sqlite)[0]
            assert (first.recipient, first.dedupe_key) == ("A", "a0")
            first.next_attempt_at = now + timedelta(minutes=5)
            s.add(first)

        db.transaction(back_off_first_of_a)
        claimed = db.transaction(lambda s: [m.dedupe_key for m in outbox.claim_due(s, now, 10, skip_locked=not db.is_sqlite)])
        assert claimed == ["b0", "b1"]  # a1 and a2 wait behind a0; B is not held up
        # B's rows are due now; A can go again when a0 is due.
        assert db.transaction(outbox.next_due) == T0
        db.transaction(lambda s: [outbox.mark_sent(s, m, now) for m in outbox.claim_due(s, now, 10, skip_locked=not db.is_sqlite)])
        assert db.transaction(outbox.next_due) == now + timedelta(minutes=5)
        later = now + timedelta(minutes=5)
        claimed = db.transaction(lambda s: [m.dedupe_key for m in outbox.claim_due(s, later, 10, skip_locked=not db.is_sqlite)])
        assert claimed == ["a0", "a1", "a2"]
    finally:
        db.close()
