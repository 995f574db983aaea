"""An inbound event survives the inbox: what is stored before the ack is what the handlers get."""

from __future__ import annotations

import json
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from handlers.events import ChatLine, InboundEvent
from nlp.calendar import SHANGHAI

texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60)
lines = st.builds(ChatLine, speaker=texts, text=texts, sent_at=st.none() | texts)


@given(text=texts, record=st.lists(lines, max_size=4), extra=st.dictionaries(texts, texts | st.integers(), max_size=3))
def test_an_event_round_trips_through_its_inbox_json(text: str, record: list[ChatLine], extra: dict[str, object]) -> None:
    event = InboundEvent(
        platform="feishu", kind="text", platform_user="ou_1", text=text,
        received_at=datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI), chat_record=tuple(record), extra=extra,
    )
    raw = event.to_json()
    assert InboundEvent.from_json(raw) == event
    assert json.loads(raw)["chat_record"] == [{"speaker": c.speaker, "text": c.text, "sent_at": c.sent_at} for c in record]


def test_text_no_database_can_store_is_cleaned_before_the_inbox() -> None:
    event = InboundEvent(
        platform="dingtalk", kind="text", platform_user="u1", text="张总\x00确认\ud800下周看产线",
        received_at=datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI), chat_record=(ChatLine("李工\udc00", "报价\x00"),),
        extra={"chat_type": "group\ud800", "ids": ["a\x00"], "n": 3},
    )
    raw = event.to_json()
    raw.encode("utf-8")  # storable as it is
    back = InboundEvent.from_json(raw)
    assert back.text == "张总确认\ufffd下周看产线"
    assert back.chat_record == (ChatLine("李工\ufffd", "报价"),)
    assert back.extra == {"chat_type": "group\ufffd", "ids": ["a"], "n": 3}
