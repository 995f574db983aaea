"""The stage machine as pure functions: every transition, missing fields, deadlines, config."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handlers.stages import (
    StageRuleError,
    allowed_targets,
    check_transition,
    deadline,
    default_pipeline,
    missing_fields,
    parse_answer,
    parse_stages,
    render,
)
from nlp.calendar import SHANGHAI, BusinessHours

PIPE = default_pipeline()
OPEN = ["首通电话", "需求诊断", "方案发送", "异议处理", "下次联系", "报价"]


def test_default_pipeline_is_the_pilot_customers() -> None:
    assert PIPE.names == ("首通电话", "需求诊断", "方案发送", "异议处理", "下次联系", "报价", "签约", "输单")
    assert [f.name for f in PIPE.stage("需求诊断").required] == ["痛点", "预算", "决策人"]  # type: ignore[union-attr]
    assert [f.name for f in PIPE.stage("输单").required] == ["输单原因"]  # type: ignore[union-attr]
    assert PIPE.stage("下次联系").required[0].kind == "date"  # type: ignore[union-attr]


@pytest.mark.parametrize("current", OPEN + ["签约", "输单"])
@pytest.mark.parametrize("target", OPEN + ["签约", "输单"])
def test_every_transition_of_the_pilot_pipeline(current: str, target: str) -> None:
    verdict = check_transition(PIPE, current, target)
    if current in ("签约", "输单"):
        assert not verdict.allowed and verdict.code in ("closed", "same")
        return
    i = OPEN.index(current)
    if target == current:
        expected = "same"
    elif target == "输单":
        expected = "lost"
    elif target == "签约":
        expected = "won" if current == "报价" else "won_early"
    elif OPEN.index(target) == i + 1:
        expected = "forward"
    elif OPEN.index(target) < i:
        expected = "back"
    else:
        expected = "skip"
    assert verdict.code == expected
    assert verdict.allowed == (expected in ("forward", "back", "won", "lost"))
    if not verdict.allowed:
        assert verdict.zh  # a refusal always tells the rep why


def test_refusals_teach_the_fix() -> None:
    skip = check_transition(PIPE, "首通电话", "报价")
    assert "不能跳过" in skip.zh and "需求诊断" in skip.zh
    typo = check_transition(PIPE, "首通电话", "需求诊段")
    assert typo.code == "unknown" and "需求诊断" in typo.zh
    assert check_transition(PIPE, "需求诊断", "报价阶段").code == "skip"  # 「报价阶段」 is 报价


def test_override_lifts_skip_and_reopens_but_not_same_or_unknown() -> None:
    assert check_transition(PIPE, "首通电话", "报价", override=True).allowed
    assert check_transition(PIPE, "首通电话", "签约", override=True).allowed
    assert check_transition(PIPE, "输单", "报价", override=True).allowed
    assert not check_transition(PIPE, "报价", "报价", override=True).allowed
    assert not check_transition(PIPE, "报价", "不存在", override=True).allowed


def test_allowed_targets_from_the_middle() -> None:
    assert allowed_targets(PIPE, "方案发送") == ("首通电话", "需求诊断", "异议处理", "输单")
    assert allowed_targets(PIPE, "签约") == ()


def test_missing_fields_in_order_and_blank_counts_as_missing() -> None:
    stage = PIPE.stage("需求诊断")
    assert stage is not None
    assert [f.name for f in missing_fields(stage, {})] == ["痛点", "预算", "决策人"]
    assert [f.name for f in missing_fields(stage, {"预算": 50000000, "痛点": "  "})] == ["痛点", "决策人"]
    assert missing_fields(stage, {"痛点": "精度", "预算": 1, "决策人": "王主任"}) == ()


def test_deadline_in_business_hours_over_night_and_holiday() -> None:
    hours = BusinessHours()
    first = PIPE.stage("首通电话")
    assert first is not None
    # Accepted Tuesday 16:00: 2 hours today, 2 tomorrow → Wednesday 11:00.
    due = deadline(first, datetime(2026, 3, 10, 16, 0, tzinfo=SHANGHAI), {}, hours)
    assert due == datetime(2026, 3, 11, 11, 0, tzinfo=SHANGHAI) and due.tzinfo == timezone.utc
    # Accepted Friday before the 2026 Labour Day break (May 1–5): due the next working day.
    due = deadline(first, datetime(2026, 4, 30, 17, 0, tzinfo=SHANGHAI), {}, hours)
    assert due is not None and due.astimezone(SHANGHAI).date().isoformat() > "2026-05-05"
    nxt = PIPE.stage("下次联系")
    assert nxt is not None
    assert deadline(nxt, datetime(2026, 3, 10, 10, tzinfo=SHANGHAI), {"下次联系日期": "2026-03-14"}, hours) == \
        datetime(2026, 3, 16, 9, 0, tzinfo=SHANGHAI)  # a Saturday moves to Monday's opening
    assert deadline(PIPE.stage("签约"), datetime(2026, 3, 10, 10, tzinfo=SHANGHAI), {}, hours) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        deadline(first, datetime(2026, 3, 10, 10), {}, hours)


def test_answers_are_parsed_to_fen_and_dates() -> None:
    now = datetime(2026, 3, 10, 10, tzinfo=SHANGHAI)
    stage = PIPE.stage("报价")
    assert stage is not None
    assert parse_answer(stage.required[0], "48.5万", now) == (48500000, "")
    assert parse_answer(stage.required[0], "480000", now) == (48000000, "")
    value, hint = parse_answer(stage.required[0], "还没定", now)
    assert value is None and "金额" in hint
    when = PIPE.stage("下次联系").required[0]  # type: ignore[union-attr]
    assert parse_answer(when, "下周三", now) == ("2026-03-18", "")
    assert parse_answer(when, "2026-04-01", now) == ("2026-04-01", "")


def test_template_renders_variables_and_blank_reads_unfilled() -> None:
    text = render("{客户名称} 进入方案报价，金额 {报价金额}，截止 {截止日期}", {"客户名称": "恒锐", "报价金额": "48.5万"})
    assert text == "恒锐 进入方案报价，金额 48.5万，截止 未填写"


def test_config_stages_parse_and_refuse() -> None:
    pipe = parse_stages([
        {"name": "初访", "due_within_hours": 8},
        {"name": "报价", "required": ["报价金额"], "notify": ["owner", "chenjing"], "template": "{客户名称} 报价 {报价金额}"},
        {"name": "赢单", "outcome": "won"},
    ], member_ids=["chenjing"])
    assert pipe.names == ("初访", "报价", "赢单") and pipe.first.name == "初访"
    bad = [
        ([{"name": "a"}, {"name": "a"}], "name", "重复"),
        ([{"name": "a", "notfy": []}], "notfy", "notify"),
        ([{"name": "a", "notify": ["nobody"]}], "notify", "nobody"),
        ([{"name": "a", "template": "{客户明称}"}], "template", "客户名称"),
        ([{"name": "a", "outcome": "won"}], "stages", "至少"),
        ([{"name": "w", "outcome": "won"}, {"name": "a"}], "name", "最后"),
        ([{"name": "a", "due_within_hours": -1}], "due_within_hours", "时限"),
        ([{"name": "a", "required": ["x"], "due_from_field": "x"}], "due_from_field", "日期"),
        ([{"name": "a", "required": ["x"], "fields": {"x": "money"}}], "fields", "money"),
    ]
    for raw, key, words in bad:
        with pytest.raises(StageRuleError) as info:
            parse_stages(raw)
        assert info.value.key == key and words in str(info.value), raw
