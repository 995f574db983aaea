"""The organisation (regions, members) mirrored from the config into the database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlmodel import Session

from store.models import Member, Region

# pg_advisory_xact_lock key for the start-up org sync (any fixed 64-bit number of ours).
ORG_SYNC_LOCK = 0x6C6561646F7267


@dataclass(frozen=True)
class RegionRow:
    """A region as the config states it."""

    name: str
    provinces: tuple[str, ...]
    manager_id: str | None


@dataclass(frozen=True)
class MemberRow:
    """A member as the config states it."""

    id: str
    name: str
    role: str
    region: str | None
    manager_id: str | None
    daily_capacity: int
    active: bool
    on_leave: bool
    wecom_userid: str | None
    feishu_open_id: str | None
    dingtalk_userid: str | None
    preferred_platform: str | None
    joined_at: datetime | None = None


def sync_org(session: Session, regions: Iterable[RegionRow], members: Iterable[MemberRow], now: datetime) -> None:
    """Upsert regions and members; members no longer configured become inactive (history keeps them)."""
    if session.get_bind().dialect.name == "postgresql":
        # Several `leadbot serve` processes starting together on one database would race to
        # insert the same regions (UniqueViolation kills all but one): serialise the sync.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ORG_SYNC_LOCK})
    wanted_regions = {r.name: r for r in regions}
    for row in session.execute(select(Region)).scalars():
        if row.name not in wanted_regions:
            session.delete(row)
    for r in wanted_regions.values():
        region = session.get(Region, r.name) or Region(name=r.name)
        region.provinces = json.dumps(list(r.provinces), ensure_ascii=False)
        region.manager_id = r.manager_id
        session.add(region)
    wanted = {m.id: m for m in members}
    for existing in session.execute(select(Member)).scalars():
        if existing.id not in wanted:
            existing.active = False
            session.add(existing)
    for m in wanted.values():
        member = session.get(Member, m.id) or Member(id=m.id, name=m.name)
        member.name, member.role, member.region, member.manager_id = m.name, m.role, m.region, m.manager_id
        member.daily_capacity, member.active, member.on_leave = m.daily_capacity, m.active, m.on_leave
        member.wecom_userid, member.feishu_open_id, member.dingtalk_userid = m.wecom_userid, m.feishu_open_id, m.dingtalk_userid
        member.preferred_platform = m.preferred_platform
        member.joined_at = m.joined_at
        session.add(member)
