"""Generalisation rules for industry, intents, sentiment and next action (issue 4).

Table tests for the context rules (negation, hypothetical, past), the wider cue families and the
next-action filters, on invented messages; and a floor over tests/data/extraction/fresh_classify.jsonl,
209 messages written from the spec before the extractor was run on them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from nlp.classify import (
    classify_industry,
    classify_intents,
    classify_sentiment,
    extract_next_action,
)
from nlp.normalize import normalize
from tests.conftest import SHARED

FRESH = Path(__file__).parent / "data" / "extraction" / "fresh_classify.jsonl"
SCORE = SHARED / "extraction" / "score.py"
# Reached when the rules were written (before: industry 0.955, intents 0.793, sentiment 0.857,
# next_action 0.807); a change that loses ground fails here.
FRESH_FLOORS = {"industry": 0.97, "intents": 0.97, "sentiment": 0.97, "next_action": 0.95}


def _intents(text: str) -> set[str]:
    return set(classify_intents(normalize(text)))


@pytest.mark.parametrize(("text", "label", "present"), [
    # negation before the cue, with modal words between
    ("他们不打算改造，老线还能再用几年", "upgrade_need", False),
    ("客户没说要样品，就是要了份资料", "sample_request", False),
    ("客户还没决定要不要下单，在等领导批预算", "sign_intent", False),
    ("客户并没有投诉，只是问问保修期多长", "complaint", False),
    ("客户说不考虑别的品牌，就认我们家的", "churn_risk", False),
    ("量大的话有没有优惠", "quote_request", True),  # 有没有 asks, it does not negate
    # a hypothetical condition is not the fact; a conditional order still is
    ("如果以后要扩产的话再联系我们", "upgrade_need", False),
    ("价格能接受的话他们就签", "price_agreed", False),
    ("价格能接受的话他们就签", "sign_intent", True),
    # what already happened
    ("特钢厂的轧机液压站漏油，是我们上次改造的那套", "upgrade_need", False),
    ("上周去客户那边拜访过了，对方还在评估", "visit_planned", False),
    ("客户说上次来调试的工程师态度很差", "visit_planned", False),
    ("先拿一台回去试试，好用的话就订十台", "visit_planned", False),
    # wider cue families
    ("合肥那家电池厂决定走合同了，法务正在审条款", "sign_intent", True),
    ("起重机厂的客户下了二十套限位器的单", "sign_intent", True),
    ("他们说先定两台试试水，后面看效果再加", "sign_intent", True),
    ("他们说先定两台试试水，后面看效果再加", "sample_request", False),
    ("单价4800元他们同意了", "price_agreed", True),
    ("九五折他们接受了", "price_agreed", True),
    ("他们想用视觉检测替代人工目检", "upgrade_need", True),
    ("锅炉房的控制系统太老了，准备整体翻新", "upgrade_need", True),
    ("他们的旧冷水机组能耗太高，考虑换一套高效的", "churn_risk", False),
    ("交货一拖再拖，客户很恼火", "complaint", True),
    ("贵司上批货包装破损严重", "complaint", True),
    ("客户吐槽友商的设备老坏", "complaint", False),
    ("明天下午去见张工，聊聊技术方案", "visit_planned", True),
    ("客户说自己会去跟领导汇报", "visit_planned", False),
    ("他们希望免费试用三个月", "sample_request", True),
    ("研究所要一套测试系统，让我们先报个价", "sample_request", False),
    ("化工园区的一家石化企业想要防爆阀门的报价", "quote_request", True),
    ("报价昨天已经发过去了，客户说这两天内部讨论", "quote_request", False),
    ("打了三次电话都不接，微信也不回", "churn_risk", True),
    ("招标结果出来了，我们没中", "churn_risk", True),
    ("他们改用了竞争对手的产品", "churn_risk", True),
    ("订单被客户取消了", "sign_intent", False),
])
def test_intent_rules(text: str, label: str, present: bool) -> None:
    assert (label in _intents(text)) is present


def test_fault_counts_only_near_what_we_delivered() -> None:
    far = "他们的轧机液压系统漏油漏得厉害想整个改造一下还有两台卷取机的电机也要换雷主任说领导对我们上次的方案挺满意"
    assert "complaint" not in _intents(far)
    assert "complaint" in _intents("热电厂的给水泵报警了，是我们去年装的")


@pytest.mark.parametrize(("text", "expected"), [
    ("客户并没有投诉，只是问问保修期多长", "neutral"),
    ("合同约定的是月底到货，现在推迟到下个月，客户不太高兴", "negative"),
    ("对方已经两周没回消息了", "negative"),
    ("订单被客户取消了", "negative"),
    ("客户说不考虑别的品牌，就认我们家的", "positive"),
    ("项目搁置了，今年应该不会再启动", "neutral"),
    ("客户还没决定要不要下单，在等领导批预算", "neutral"),
])
def test_sentiment_rules(text: str, expected: str) -> None:
    assert classify_sentiment(normalize(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("李经理答应下个月续签年度框架协议", None),  # the customer's promise
    ("客户很满意这次的调试结果，准备再订三套", None),  # 准备 + order verb: the customer's plan
    ("药厂GMP改造要求换一批不锈钢阀门", None),  # what the project needs
    ("上周发过去的阀门有三只漏液，客户很不满意", None),
    ("发错货了，他们要的是DN50，我们发成了DN65", None),
    ("安装完以后机器噪音特别大，客户投诉到我们老板那里了", None),
    ("无锡那边的客户说他们车间下个月要扩一条线，想约我们过去看看场地", None),
    ("我们去年供的两只温度传感器坏了，要换新的，让我们寄两只过去", "寄两只过去"),
    ("客户反映我们那套系统的屏幕偶尔黑屏，我明天远程看一下", "远程看"),
    ("售后师傅明天到现场做年度巡检", "到现场做年度巡检"),
    ("我打算下周三再跑一趟宁波，当面跟他们谈交期", "跑一趟宁波"),
    ("帮他们报个价，二十套，含税含运费", "报个价"),
    ("客户让我们按新图纸重新核一下价", "按新图纸重新核一下价"),
    ("这两天抽空整理一下客户的需求清单", "整理一下客户的需求清单"),
    ("等他们老板出差回来，再约时间上门拜访", "再约时间上门拜访"),
    ("今天客户来电话，让我们先把发票寄了", "把发票寄"),
])
def test_next_action_rules(text: str, expected: str | None) -> None:
    assert extract_next_action(normalize(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("数据中心要扩容，UPS和空调都得加", None),
    ("天津一家空调厂的总装线", "家电"),
    ("做锂电正极材料的客户想扩产", "电池材料"),
    ("新乡那家做电池隔膜的客户", "电池材料"),
    ("合肥那家电池厂决定走合同了", "动力电池"),
])
def test_industry_rules(text: str, expected: str | None) -> None:
    assert classify_industry(normalize(text)) == expected


def _scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extraction_score_fresh", SCORE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not SCORE.exists(), reason="shared scorer not available")
def test_fresh_set_floors() -> None:
    rows = [json.loads(x) for x in FRESH.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(rows) >= 200
    preds = {}
    for row in rows:
        t = normalize(row["text"])
        preds[row["id"]] = {"industry": classify_industry(t), "intents": classify_intents(t),
                            "sentiment": classify_sentiment(t), "next_action": extract_next_action(t)}
    results, _, _ = _scorer().score(rows, preds)
    low = {f: round(results[f]["f1"], 3) for f, floor in FRESH_FLOORS.items() if results[f]["f1"] < floor}
    assert not low, f"below floor on fresh_classify.jsonl: {low}"
