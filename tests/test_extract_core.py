"""Core extraction plumbing: normalisation, record splitting, assembly, batch runner."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlp.chat import Segment, split_record, stamp_spans
from nlp.extract import FIELDS, extract, run_jsonl
from nlp.normalize import fold, normalize

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 5, 20, 10, 0, tzinfo=CST)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("１３９　５２８４", "139 5284"),
        ("ＡＢＣ：（ｘ）", "ABC:(x)"),
        ("３０万～４５万", "30万~45万"),
        ("a\x00b\x07c", "a b c"),
        ("中文不变。", "中文不变。"),
    ],
)
def test_normalize_maps_full_width_and_keeps_length(raw: str, want: str) -> None:
    assert normalize(raw) == want
    assert len(normalize(raw)) == len(raw)


def test_fold_simplifies_number_words_but_normalize_keeps_them() -> None:
    assert fold("下週三報價兩萬") == "下周三报价两万"
    assert normalize("經理") == "經理"


@given(st.text(max_size=200))
def test_normalize_and_fold_preserve_length(s: str) -> None:
    assert len(normalize(s)) == len(s)
    assert len(fold(s)) == len(s)


def test_plain_message_is_one_segment() -> None:
    text = "王总说下周来厂里看样机"
    assert split_record(text, NOW) == [Segment(None, text, NOW, 0)]


def test_speaker_lines_split_by_colon() -> None:
    text = "孟经理(华鼎机械): 报价收到\n我: 好的\n孟经理: 下周三签"
    segs = split_record(normalize(text), NOW)
    assert [s.speaker for s in segs] == ["孟经理(华鼎机械)", "我", "孟经理"]
    assert [s.text for s in segs] == ["报价收到", "好的", "下周三签"]
    for s in segs:
        assert normalize(text)[s.start:s.start + len(s.text)] == s.text


def test_stamped_header_lines_set_reference_time() -> None:
    text = "顾晓东 5月11日 14:02\n明天能到吗\n我 05-12 09:30\n今天下午发"
    segs = split_record(text, NOW)
    assert [(s.speaker, s.text) for s in segs] == [("顾晓东", "明天能到吗"), ("我", "今天下午发")]
    assert segs[0].ref == datetime(2026, 5, 11, 14, 2, tzinfo=CST)
    assert segs[1].ref == datetime(2026, 5, 12, 9, 30, tzinfo=CST)
    assert all("14:02" not in s.text for s in segs)


def test_stamp_in_record_lies_in_the_past() -> None:
    # A December stamp forwarded in January belongs to last year.
    jan = datetime(2026, 1, 5, 9, 0, tzinfo=CST)
    segs = split_record("客户(韦经理) 12-30 17:10\n节后再说", jan)
    assert segs[0].ref.date().isoformat() == "2025-12-30"


def test_email_headers() -> None:
    text = "From: 蔡明\nSent: 2026年4月2日 08:15\nSubject: 询价\n请报价"
    segs = split_record(text, NOW)
    assert segs[-1].speaker == "蔡明"
    assert segs[-1].ref == datetime(2026, 4, 2, 8, 15, tzinfo=CST)
    spans = stamp_spans(text, NOW)
    assert [text[a:b] for a, b in spans] == ["2026年4月2日 08:15"]


def test_label_prefix_is_not_a_speaker() -> None:
    text = "备注: 下周回访\n主题: 报价"
    assert all(s.speaker is None for s in split_record(text, NOW))


def test_extract_returns_exactly_the_spec_fields() -> None:
    out = extract("今天天气不错", NOW)
    assert tuple(out) == FIELDS
    assert out["sentiment"] in ("positive", "neutral", "negative")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_extract_never_raises_on_random_text(s: str) -> None:
    out = extract(s, NOW)
    assert tuple(out) == FIELDS
    json.dumps(out, ensure_ascii=False)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789一二三四五六七八九十百千万亿两几来号月日周年天下上这本明后前:-~到至元块wWk¥ \n", max_size=120))
def test_extract_never_raises_on_number_soup(s: str) -> None:
    out = extract(s, NOW)
    assert tuple(out) == FIELDS


def test_extract_handles_huge_and_naive_now() -> None:
    big = "下周三报价12万，电话13800138000。" * 5000
    out = extract(big, datetime(2026, 5, 20, 10, 0))
    assert tuple(out) == FIELDS


def test_run_jsonl_mixed_lines() -> None:
    lines = [
        json.dumps({"id": "a1", "now": "2026-05-20T10:00:00+08:00", "text": "你好", "gold": {}}),
        "{not json",
        json.dumps({"id": "a3", "text": "没有时间"}),
        "纯文本一行",
    ]
    out = io.StringIO()
    n = run_jsonl(lines, out, default_now=None)
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert n == 4 and [r["id"] for r in rows] == ["a1", 2, "a3", 4]
    assert all(tuple(r["pred"]) == FIELDS for r in rows)


def test_run_jsonl_plain_lines_use_default_now() -> None:
    out = io.StringIO()
    run_jsonl(["明天见"], out, default_now=NOW)
    row = json.loads(out.getvalue())
    assert row["id"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "[2026-05-12 15:32:10] 靳晓明: 明天来\n[2026-05-12 15:40:00] 我: 好的",
        "靳晓明(采购部) 2026-05-12 15:32:10\n明天来\n我 2026-05-12 15:40:00\n好的",
        "5月12日 15:32 靳晓明：明天来\n5月12日 15:40 我：好的",
        "靳晓明 5/12 15:32\n明天来\n我 5/12 15:40\n好的",
    ],
)
def test_record_formats_give_speaker_and_stamp(text: str) -> None:
    segs = split_record(text, NOW)
    assert [s.text for s in segs] == ["明天来", "好的"]
    assert segs[0].speaker is not None and segs[0].speaker.startswith("靳晓明")
    assert segs[1].speaker == "我"
    assert segs[0].ref == datetime(2026, 5, 12, 15, 32, tzinfo=CST)
    assert segs[1].ref.date().isoformat() == "2026-05-12"


def test_extract_spans_come_from_the_text_as_written() -> None:
    out = extract("预算ＲＭＢ　１２万，下週三前回覆", NOW)
    assert [a["text"] for a in out["amounts"]] == ["ＲＭＢ　１２万"]
    assert [d["text"] for d in out["dates"]] == ["下週三前"]
    assert out["dates"][0]["date"] == "2026-05-27"


def test_module_cli_reads_stdin_and_writes_only_json_lines() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    stdin = "\n".join([
        json.dumps({"id": "x1", "now": "2026-05-20T10:00:00+08:00", "text": "下周三报价12万"}, ensure_ascii=False),
        "明天下午来电 13912345678",
        "",
    ])
    proc = subprocess.run(
        [sys.executable, "-m", "nlp.extract", "--now", "2026-05-20T10:00:00+08:00"],
        input=stdin.encode("utf-8"), capture_output=True, cwd=root, timeout=120, check=True,
    )
    rows = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["x1", 2]
    assert rows[0]["pred"]["amounts"][0]["yuan_min"] == 120000
    assert rows[0]["pred"]["dates"] == [{"text": "下周三", "date": "2026-05-27"}]
    assert rows[1]["pred"]["phones"] == ["13912345678"]
    assert rows[1]["pred"]["dates"][0]["date"] == "2026-05-21"


def test_clock_time_colon_is_not_a_speaker() -> None:
    segs = split_record("明天上午 9:30\n到厂调试", NOW)
    assert all(s.speaker is None for s in segs)
    assert [d["date"] for d in extract("明天上午 9:30\n到厂调试", NOW)["dates"]] == ["2026-05-21"]


def test_schedule_line_with_weekday_is_not_a_header() -> None:
    out = extract("下周三 14:00\n到厂调试", NOW)
    assert [d["date"] for d in out["dates"]] == ["2026-05-27"]


def test_chinese_mail_header_without_space() -> None:
    text = "发件人：蔡明\n发送时间：2026年5月2日 08:15\n主题：询价\n请明天报价"
    segs = split_record(text, NOW)
    assert segs[-1].speaker == "蔡明" and segs[-1].ref.date().isoformat() == "2026-05-02"
    assert [d["date"] for d in extract(text, NOW)["dates"]] == ["2026-05-03"]


def test_time_only_stamps_later_than_now_are_yesterday() -> None:
    segs = split_record("刘工 15:32\n明天能来吗\n我 15:40\n可以", NOW)  # forwarded at 10:00
    assert [s.ref for s in segs] == [
        datetime(2026, 5, 19, 15, 32, tzinfo=CST), datetime(2026, 5, 19, 15, 40, tzinfo=CST),
    ]
    segs = split_record("刘工 09:32\n今天能来吗", NOW)
    assert segs[0].ref == datetime(2026, 5, 20, 9, 32, tzinfo=CST)
