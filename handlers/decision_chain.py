"""Decision chains: who decides at a customer, who influences whom, built from chat.

``恒锐 决策链：王主任说了算，李主任管技术`` records 王主任 as the decider (weight 90),
李主任 as the technical evaluator (weight 60) and the link 李主任 → 影响 → 王主任;
``恒锐 决策链：设备科王主任 影响 检验科李主任`` records an explicit link; ``张总 权重 70``
sets a weight. ``恒锐 决策链`` shows the chain as a card (a text tree, deciders on top).
Weights live in ``Contact.decision_weight`` (0–100), links in ``decision_link``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from cards.model import Card
from handlers.context import HandlerContext, Outgoing
from handlers.events import InboundEvent
from handlers.leads import audit
from store.models import Contact, Customer, Member
from store.models_sales import DecisionLink

TITLES = "主任|总监|总经理|经理|总工|总|科长|处长|部长|院长|厂长|主管|老板|书记|工"
PERSON = rf"(?:[\u4e00-\u9fff]{{1,6}}?[科部处室组院厂])?[\u4e00-\u9fff](?:{TITLES})"
_PERSON = re.compile(rf"^(?P<dept>[\u4e00-\u9fff]{{1,6}}?[科部处室组院厂])?(?P<name>[\u4e00-\u9fff])(?P<title>{TITLES})$")
COMMAND = re.compile(r"^(?P<who>[^\s，,:：]{2,30}?)\s*(?:的)?决策链\s*[:：]?\s*(?P<body>.*)$", re.S)
DECIDES = re.compile(rf"(?P<p>{PERSON})\s*(?:说了算|拍板|最终决定|定板|一票否决|做决定)")
MANAGES = re.compile(rf"(?P<p>{PERSON})\s*(?:管|负责|把关)(?P<area>[\u4e00-\u9fff]{{1,6}})")
INFLUENCES = re.compile(rf"(?P<a>{PERSON})\s*(?:→|->)?\s*影响\s*(?:→|->)?\s*(?P<b>{PERSON})")
WEIGHT = re.compile(rf"(?P<p>{PERSON})\s*(?:权重|话语权|决策权重)\s*[:：]?\s*(?P<n>\d{{1,3}})")
NO_SAY = re.compile(rf"(?P<p>{PERSON})\s*(?:说了不算|没有决定权|只是传话|不管事)")
DECIDER_WEIGHT, AREA_WEIGHT, NO_SAY_WEIGHT = 90, 60, 10


@dataclass(frozen=True)
class Statement:
    """What one message said: weights by person, areas, and influence links (source, target)."""

    weights: dict[str, int]
    areas: dict[str, str]
    links: tuple[tuple[str, str], ...]


def parse_statement(text: str) -> Statement:
    """Pure: the decision facts in ``text`` (people as written, e.g. 设备科王主任)."""
    weights: dict[str, int] = {}
    areas: dict[str, str] = {}
    links: list[tuple[str, str]] = []
    deciders: list[str] = []
    for m in DECIDES.finditer(text):
        weights[m.group("p")] = DECIDER_WEIGHT
        deciders.append(m.group("p"))
    for m in MANAGES.finditer(text):
        weights.setdefault(m.group("p"), AREA_WEIGHT)
        areas[m.group("p")] = m.group("area")
    for m in NO_SAY.finditer(text):
        weights[m.group("p")] = NO_SAY_WEIGHT
    for m in WEIGHT.finditer(text):
        weights[m.group("p")] = min(int(m.group("n")), 100)
    for m in INFLUENCES.finditer(text):
        links.append((m.group("a"), m.group("b")))
    # Whoever owns an area advises the decider named in the same message.
    for person in areas:
        for decider in deciders:
            if person != decider and (person, decider) not in links:
                links.append((person, decider))
    return Statement(weights, areas, tuple(links))


def _split(person: str) -> tuple[str, str]:
    m = _PERSON.match(person)
    if m is None:
        return person[:1], person[1:]
    return m.group("name"), (m.group("dept") or "") + m.group("title")


def _contact(session: Session, customer_id: int, person: str, area: str | None) -> Contact:
    """The customer's contact for ``person`` (王主任 matches 王 / 设备科主任), created if new."""
    name, title = _split(person)
    bare = _PERSON.match(person)
    plain_title = bare.group("title") if bare else title
    for c in session.execute(select(Contact).where(Contact.customer_id == customer_id, Contact.name == name)).scalars():
        if (c.title or "").endswith(plain_title):
            if len(title) > len(c.title or ""):
                c.title = title[:32]
            return c
    contact = Contact(customer_id=customer_id, name=name, title=(title + (f"（{area}）" if area else ""))[:32] or None)
    session.add(contact)
    session.flush()
    return contact


def record(session: Session, customer: Customer, statement: Statement, actor: str, ctx: HandlerContext) -> int:
    """Store what ``statement`` says about ``customer``; returns how many facts changed."""
    assert customer.id is not None
    now = ctx.clock.now()
    people = set(statement.weights) | set(statement.areas) | {p for link in statement.links for p in link}
    contacts = {p: _contact(session, customer.id, p, statement.areas.get(p)) for p in sorted(people)}
    changed = 0
    for person, weight in statement.weights.items():
        contact = contacts[person]
        if contact.decision_weight != weight:
            contact.decision_weight = weight
            session.add(contact)
            changed += 1
    for a, b in statement.links:
        source, target = contacts[a].id, contacts[b].id
        assert source is not None and target is not None
        exists = session.execute(select(DecisionLink.id).where(DecisionLink.customer_id == customer.id,
                                                               DecisionLink.source_contact_id == source,
                                                               DecisionLink.target_contact_id == target)).first()
        if exists is None:
            session.add(DecisionLink(customer_id=customer.id, source_contact_id=source, target_contact_id=target, created_at=now))
            changed += 1
    if changed:
        audit(session, "customer", customer.id, actor, "decision_chain", f"更新决策链 {changed} 项", now)
    return changed


def chain_card(session: Session, customer: Customer) -> Card:
    """The decision chain as a text tree: deciders first, each with who influences them."""
    contacts = list(session.execute(select(Contact).where(Contact.customer_id == customer.id)).scalars())
    links = list(session.execute(select(DecisionLink).where(DecisionLink.customer_id == customer.id)).scalars())
    by_id = {c.id: c for c in contacts}
    influencers: dict[int, list[int]] = {}
    sources = set()
    for link in links:
        influencers.setdefault(link.target_contact_id, []).append(link.source_contact_id)
        sources.add(link.source_contact_id)

    def label(c: Contact) -> str:
        weight = f" · 权重 {c.decision_weight}" if c.decision_weight is not None else ""
        # Stored as 王 / 设备科主任; people say 设备科王主任.
        m = re.match(r"^([\u4e00-\u9fff]{1,6}?[科部处室组院厂])(.+)$", c.title or "")
        return (f"{m.group(1)}{c.name}{m.group(2)}" if m else f"{c.name}{c.title or ''}") + weight

    lines: list[str] = []
    seen: set[int] = set()

    def walk(cid: int, prefix: str, last: bool, depth: int) -> None:
        contact = by_id[cid]
        branch = "" if depth == 0 else ("└─ " if last else "├─ ") + "影响 → "
        lines.append(prefix + branch + label(contact))
        if cid in seen:
            return
        seen.add(cid)
        kids = sorted(influencers.get(cid, []), key=lambda k: -(by_id[k].decision_weight or 0))
        for i, kid in enumerate(kids):
            walk(kid, prefix + ("" if depth == 0 else ("   " if last else "│  ")), i == len(kids) - 1, depth + 1)

    weighted = sorted((c for c in contacts if c.decision_weight is not None or c.id in sources or c.id in influencers),
                      key=lambda c: -(c.decision_weight or 0))
    roots = [c for c in weighted if c.id not in sources] or weighted[:1]
    for root in roots:
        assert root.id is not None
        walk(root.id, "", True, 0)
    for c in weighted:
        if c.id not in seen and c.id is not None:
            walk(c.id, "", True, 0)
    text = "\n".join(lines) if lines else "还没有决策链信息。可以发「公司简称 决策链：王主任说了算，李主任管技术」。"
    return Card(title=f"{customer.name} · 决策链", text=text)


def on_text(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing] | None:
    """``X 决策链[：…]``: record what is said and show the chain; None when not a chain command."""
    m = COMMAND.match(event.text.strip())
    if m is None:
        return None
    from handlers.opportunities import find_lead, find_opportunity

    who = m.group("who")
    opp = find_opportunity(session, member, who)
    lead = None if opp else find_lead(session, member, who)
    customer_id = opp.customer_id if opp else (lead.customer_id if lead else None)
    customer = session.get(Customer, customer_id) if customer_id else None
    if customer is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"没有找到「{who}」。请用您已接受的客户简称，例如「恒锐 决策链」。", platform=event.platform)]
    body = m.group("body").strip()
    out: list[Outgoing] = []
    if body:
        statement = parse_statement(body)
        if not (statement.weights or statement.links):
            return [Outgoing(member.id, "text", f"{cause}:reply", platform=event.platform,
                             text="没能看懂这句决策链。可以这样写：「王主任说了算，李主任管技术」或「设备科王主任 影响 检验科李主任」。")]
        record(session, customer, statement, member.id, ctx)
    card = chain_card(session, customer)
    out.append(Outgoing(member.id, "card", f"{cause}:chain", card=card, card_id=f"d{cause.rsplit(':', 1)[-1]}"[:64], platform=event.platform))
    return out
