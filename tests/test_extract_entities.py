"""Contacts, companies, places, industry, intents, sentiment and next action on invented messages.

Every case is written for these tests (none is copied from the labelled sets) and names the
convention of the spec it checks.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


import pytest

from nlp.chat import Segment, split_record
from nlp.classify import classify_industry, classify_intents, classify_sentiment, extract_next_action
from nlp.entities import extract_companies, extract_contacts
from nlp.normalize import normalize
from nlp.places import extract_place

NOW = datetime(2026, 5, 12, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def _prep(text: str) -> tuple[str, list[Segment]]:
    t = normalize(text)
    return t, split_record(t, NOW)


def contacts(text: str) -> list[tuple[str, str | None]]:
    t, segs = _prep(text)
    return [(str(c["name"]), c["title"]) for c in extract_contacts(t, segs)]


def companies(text: str) -> list[str]:
    t, segs = _prep(text)
    return extract_companies(t, segs)


@pytest.mark.parametrize("text, expected", [
    # surname + title
    ("上午见了恒泰那边的钱总，他说下周来厂里", [("钱", "总")]),
    ("魏处长和滕工都在会上", [("魏", "处长"), ("滕", "工")]),
    # compound surnames kept whole
    ("对接人欧阳晓东，手机13800001111", [("欧阳晓东", None)]),
    ("上官经理说方案再改改", [("上官", "经理")]),
    # role before a full name; the short form's title wins when both occur
    ("技术部长严立强说样机没问题，严总下周来", [("严立强", "总")]),
    ("质量经理柴晓梅反馈", [("柴晓梅", "质量经理")]),
    # familiar 老/小 are not titles; a role before 老X is
    ("设备科的小童说图纸收到了", [("童", None)]),
    ("采购经理老葛让我们报价", [("葛", "采购经理")]),
    # bracketed roles, Latin names, Dr./Mr. prefixes
    ("苗雨欣（仪表车间主任）问交期", [("苗雨欣", "仪表车间主任")]),
    ("客户Linda说样品收到了", [("Linda", None)]),
    ("Dr. 孔 希望下周演示", [("孔", "Dr.")]),
    # a card: name line, title on the same line
    ("【名片】\n柯振宇 设备主管\n南京华澄环保有限公司", [("柯振宇", "设备主管")]),
    # traditional characters are matched but copied as written
    ("客戶鄭經理話佢哋想換機", [("鄭", "經理")]),
    # surname stated on its own with the role
    ("他们厂长姓鲁，鲁厂长下周来", [("鲁", "厂长")]),
    # a Latin name known from what follows it; a conjunction is not a surname
    ("客户Sabrina说样机下周到", [("Sabrina", None)]),
    ("抄送了总经理韩东和财务总监温慧", [("韩东", "总经理"), ("温慧", "财务总监")]),
    ("找机房主管钟离雪", [("钟离雪", "机房主管")]),
    # short forms of 处长/局长 before a clear follower; 何处, 全局 are words
    ("王局说下周来", [("王", "局")]),
    ("客户那边是一个姓冷的主任在对接", [("冷", "主任")]),
    ("PM：Kevin Zhang", [("Kevin Zhang", "PM")]),
    ("到底在何处，全局的规划还没定", []),
])
def test_contacts_conventions(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert contacts(text) == expected


@pytest.mark.parametrize("text, expected", [
    # our side: the rep's colleagues, after-sales, people the customer calls 小X
    ("我们李工明天过去调试，客户那边对接的是马工", [("马", "工")]),
    ("派单：售后-钟师傅，客户联系人贺工", [("贺", "工")]),
    ("晏总: 小刘啊，报价单收到了\n我: 好的晏总，下午发合同", [("晏", "总")]),
    ("Hi Jack, 我是Linda，想了解一下你们的伺服", [("Linda", None)]),
    # an internal sales group: its speakers are ours, the customer they mention is not
    ("【华东销售群】\n庞磊: 宁波那个客户的卢工说要改方案\n谷欣: 好的我来改", [("卢", "工")]),
    # a named speaker who answers the customer and promises our action is ours
    ("聂主任: 你们的设备能下周来装吗？\n韩松: 聂主任好，下周二我带人过去装", [("聂", "主任")]),
    # a corrected-away name is dropped
    ("之前群里写成章建国了，是詹建国，詹经理", [("詹建国", "经理")]),
    # no surname, or an ordinary word that looks like one
    ("他们厂长说两小时后再说", []),
    ("施工方案明天定，花生油车间先停", []),
    ("明天工程师到现场", []),
])
def test_contacts_sides_and_exclusions(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert contacts(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("杭州恒越精密机械有限公司的采购来电", ["杭州恒越精密机械有限公司"]),
    ("东莞鸿泰电子那边说下周要货", ["东莞鸿泰电子"]),
    ("合肥那家做汽车座椅的厂想换设备", []),
    ("他们原来用的是施耐德的变频器", ["施耐德"]),
    ("客户说你们华诚科技的设备不错", []),
    ("单位：南通海盛船舶（前面误写成海胜）", ["南通海盛船舶"]),
    ("常州的科迈电子（做连接器的）说价格能接受", ["科迈电子"]),
    ("伺服电机20套已经发货", []),
    ("柏晓东（瑞凯模具）问交期", ["瑞凯模具"]),
    ("柳州同心医院的设备科来电", ["柳州同心医院"]),
    ("天津港的码头运营公司想了解岸桥系统", []),
    ("佛山顺德美瑞家电的品质部来电", ["佛山顺德美瑞家电"]),
    ("今天去了苏州汇博机器人技术有限公司", ["苏州汇博机器人技术有限公司"]),
    ("深圳市腾达精密五金制品有限公司发来询价", ["深圳市腾达精密五金制品有限公司"]),
    ("跟中石化镇海炼化分公司的人吃饭", ["中石化镇海炼化分公司"]),
    ("给美的做配套的厂", []),
])
def test_companies(text: str, expected: list[str]) -> None:
    assert companies(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("昆山那家电子厂要扩产", ("江苏省", "苏州市")),
    ("重庆渝北的客户", ("重庆市", "重庆市")),
    ("广西柳州的一家车企", ("广西壮族自治区", "柳州市")),
    ("内蒙古鄂尔多斯的煤矿", ("内蒙古自治区", "鄂尔多斯市")),
    ("山东一家化工厂", ("山东省", None)),
    ("客户工厂在越南", (None, None)),
    ("座机是0755开头的", (None, None)),
    ("午饭吃了三明治", (None, None)),
    ("我明天要去无锡，常州的客户约了后天", ("江苏省", "常州市")),
    ("宁波慈溪的客户，之后又去了温州", ("浙江省", "宁波市")),
    ("廈門海滄嗰間藥廠", ("福建省", "厦门市")),
    ("你们的传感器我们闵行工厂想试一下", ("上海市", "上海市")),
    ("下周来我们东莞工厂看设备的是佛山的客户", ("广东省", "佛山市")),
])
def test_places(text: str, expected: tuple[str | None, str | None]) -> None:
    assert extract_place(normalize(text)) == expected


@pytest.mark.parametrize("text, expected", [
    ("做光伏组件的客户要扩产", "光伏"),
    ("那家电动车整车厂的焊装线", "新能源汽车"),
    ("造纸厂的DCS改造", None),
    ("医院的护士长说设备有异响", "医疗机构"),
    ("我们的储能柜卖给了一家食品厂", "食品饮料"),
    ("我们的巡检机器人样机", None),
    ("做汽车座椅的供应商", "汽车零部件"),
    ("他们的冷库要改造", "物流仓储"),
])
def test_industry(text: str, expected: str | None) -> None:
    assert classify_industry(normalize(text)) == expected


@pytest.mark.parametrize("text, label, present", [
    ("客户说价格没问题，下周一下单", "sign_intent", True),
    ("新机明年走院内流程", "sign_intent", False),
    ("就按每台四千二走", "price_agreed", True),
    ("回款的事谈妥了", "price_agreed", False),
    ("老线要整线升级，还要扩一条产线", "upgrade_need", True),
    ("我们上周发的电机有两台异响", "complaint", True),
    ("跑了半年没出过问题", "complaint", False),
    ("客户嫌价格高，还在砍价", "complaint", False),
    ("下周三去他们车间看现场", "visit_planned", True),
    ("周五先开个电话会", "visit_planned", False),
    ("想先借一台试用一个月", "sample_request", True),
    ("问整套大概多少钱", "quote_request", True),
    ("上周的报价他们看过了", "quote_request", False),
    ("最后给了西门子，以后也不找我们了", "churn_risk", True),
])
def test_intents(text: str, label: str, present: bool) -> None:
    assert (label in classify_intents(normalize(text))) is present


@pytest.mark.parametrize("text, expected", [
    ("对方说价格就这么定了，下个月下单", {"sign_intent", "price_agreed"}),
    ("老设备用了十年了，计划明年全部更新", {"upgrade_need"}),
    ("客户说竞争对手报价低了20%，他们可能会转向对方", {"churn_risk"}),
    ("做转向节的客户下了个单", {"sign_intent"}),
    ("客户问能不能给个优惠", {"quote_request"}),
    ("客户要求我们提供三套试用设备", {"sample_request"}),
    ("发过去的货少了两箱，客户很着急", {"complaint"}),
    ("安装完后客户很满意，当场签了验收单", set()),
    ("电话沟通了一下，客户还在比较几家的方案", set()),
    ("客户让我们下周去培训操作工", {"visit_planned"}),
])
def test_intent_sets(text: str, expected: set[str]) -> None:
    assert set(classify_intents(normalize(text))) == expected


@pytest.mark.parametrize("text, expected", [
    ("客户很满意，说下个月再订两台", "positive"),
    ("结果好的话他们就下单", "positive"),
    ("客户很生气，说再这样就换供应商", "negative"),
    ("不接电话也不回微信", "negative"),
    ("客户问能不能便宜点", "neutral"),
    ("设备报警了，工单已派", "neutral"),
    ("超了预算就只能选别家", "neutral"),
    ("客户对我们的服务赞不绝口", "positive"),
    ("对方态度很差，直接挂了电话", "negative"),
    ("他们对上次的延误很有意见", "negative"),
    ("我今天很开心", "neutral"),
])
def test_sentiment(text: str, expected: str) -> None:
    assert classify_sentiment(normalize(text)) == expected


@pytest.mark.parametrize("text, expected", [
    ("客户让我们周五前把样机寄过去", "把样机寄过去"),
    ("记得明天把合同打印三份带过去", "把合同打印三份带过去"),
    ("下周我再去拜访一次", "再去拜访一次"),
    ("这周不补发就不付尾款", "补发"),
    ("客户说下周他们把图纸发我们", None),
    ("记一下这个号码", None),
    ("客户下旬之前要方案", None),
    ("葛总: 明天能来调试吗\n我: 没问题，明天上午把备件带过去", "把备件带过去"),
    ("客戶請先把報價單發過來", "把報價單發過來"),
    ("电机烧了，我答应明天一早带备件过去换", "带备件过去换"),
    ("王经理问能不能月底前交货", "交货"),
    ("客户嫌交期太长，需要我们协调生产", "协调生产"),
    ("QA总监说8月份之前必须完成改造", None),
    ("让我们趁这个窗口把旧的PLC柜换掉", "把旧的PLC柜换掉"),
    ("样机测试通过了，我这边先把正式报价单做好", "把正式报价单做好"),
    ("我已经把报价发过去了", None),
])
def test_next_action(text: str, expected: str | None) -> None:
    assert extract_next_action(normalize(text)) == expected
