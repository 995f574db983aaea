"""Generalisation of contacts and companies (issue 4): categories the tuned sets did not cover.

Every row is a sentence written for this file (not taken from dev.jsonl, own.jsonl or the
fresh sets), run through the whole pipeline (normalise, split the record, extract), so that
speaker labels and record headers behave as they do in production.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from nlp.extract import extract

NOW = datetime.fromisoformat("2026-03-10T10:00:00+08:00")


def _contacts(text: str) -> list[tuple[str, str | None]]:
    return [(c["name"], c["title"]) for c in extract(text, NOW)["contacts"]]


def _companies(text: str) -> list[str]:
    return list(extract(text, NOW)["companies"])


# 1. place (optional) + a short core + an industry word as the company's ending.
@pytest.mark.parametrize("text, expected", [
    ("泉州那家华讯通信要样品", ["华讯通信"]),
    ("济宁康润制药新建车间", ["济宁康润制药"]),
    ("银川那个宁夏顺达煤机的单子", ["宁夏顺达煤机"]),
    ("兰州陇石化工设备处 姚处长", ["兰州陇石化工"]),
    ("上饶晶泰光能要两台", ["上饶晶泰光能"]),
    ("嘉兴那家瑞博汽配想换供应商", ["瑞博汽配"]),
    ("徐州恒泰煤机下周来看设备", ["徐州恒泰煤机"]),
    ("洛阳中硅新材料的技术部来电话", ["洛阳中硅新材料"]),
    ("这次跟远航精密签了框架", ["远航精密"]),
    ("顺达煤机要样品", ["顺达煤机"]),
    ("华丰阀门那边催货", ["华丰阀门"]),
    ("株洲时代特钢的轧机要改造", ["株洲时代特钢"]),
    ("跟康诺医疗约了周三", ["康诺医疗"]),
    ("九江石化的设备处要报价", ["九江石化"]),  # a known plant's short name
])
def test_industry_word_companies(text: str, expected: list[str]) -> None:
    assert _companies(text) == expected


# …and descriptions that are not names. Decision (spec: "short names that denote the company"):
# a place plus an industry word with no core of its own (湖北化工) is a region's industry, not a
# company, unless it is a known short name (九江石化) or carries a legal suffix (湖北化工集团).
@pytest.mark.parametrize("text", [
    "一家化工厂要报价",
    "做光伏的那家说再等等",
    "那家电子厂又来投诉",
    "当地石化企业都在扩产",
    "湖北化工行业今年不景气",
    "宁夏的煤机厂都在换设备",
    "我们是做电子的",
    "有个科技公司问价",
    "那几家精密加工厂都要样品",
    "这两年智能制造很火",
])
def test_industry_descriptions_are_not_companies(text: str) -> None:
    assert _companies(text) == []


# 2. names in labelled lines of tickets, cards and CRM exports.
@pytest.mark.parametrize("text, expected", [
    ("客户：上饶光能科技有限公司（光伏组件）", ["上饶光能科技有限公司"]),
    ("Account: 大连海鸿船舶工程有限公司\nIssue: 泵体渗漏", ["大连海鸿船舶工程有限公司"]),
    ("单位：绍兴柯桥恒润纺织有限公司\n联系人：韦小川", ["绍兴柯桥恒润纺织有限公司"]),
    ("备注：舟山鑫海船舶修造有限公司 · 采购 · 汪东", ["舟山鑫海船舶修造有限公司"]),
    ("客户名称：惠州华阳光电\n需求：检测设备", ["惠州华阳光电"]),
    ("公司：远航精密\n地址：苏州", ["远航精密"]),
    ("Company: 昆山精诚模具有限公司", ["昆山精诚模具有限公司"]),
    ("客户：鑫泰\n需求：二十台伺服", ["鑫泰"]),
    ("Customer: 赣州稀源新材 / 稀土分离", ["赣州稀源新材"]),
])
def test_labelled_companies(text: str, expected: list[str]) -> None:
    assert _companies(text) == expected


# 3. a group's institute or branch keeps its place and 所/院/局.
@pytest.mark.parametrize("text, expected", [
    ("中车株洲所的工程师下周来", ["中车株洲所"]),
    ("这单是给中车戚墅堰所做的", ["中车戚墅堰所"]),
    ("中铁十四局的项目部要报价", ["中铁十四局"]),
    ("中船七〇二所那边要样机", ["中船七〇二所"]),
    ("中车那边还没回", ["中车"]),
])
def test_group_institutes(text: str, expected: list[str]) -> None:
    assert _companies(text) == expected


# 4. rare surnames.
@pytest.mark.parametrize("text, expected", [
    ("淮安那边的贲科长说下周来", [("贲", "科长")]),
    ("心内科的钭护士长要试用", [("钭", "护士长")]),
    ("郜经理让我们再报一次", [("郜", "经理")]),
    ("栾总确认了", [("栾", "总")]),
    ("隋工说参数不对", [("隋", "工")]),
    ("濮主任要一份方案", [("濮", "主任")]),
    ("对接人荀立新，电话再发", [("荀立新", None)]),
    ("赖总下周过来", [("赖", "总")]),
    ("闫处长说预算批了", [("闫", "处长")]),
    ("窦科长在开会", [("窦", "科长")]),
])
def test_rare_surnames(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 5. titles from labelled fields.
@pytest.mark.parametrize("text, expected", [
    ("【名片】\n姓名：万志强\n职位：采购专员\n电话：13812345678", [("万志强", "采购专员")]),
    ("联系人：韦小川\n职务：设备经理", [("韦小川", "设备经理")]),
    ("Contact: 邢国庆 / QA manager / 0411-86529037", [("邢国庆", "QA manager")]),
    ("代理：佘建华（鲁南工控）", [("佘建华", "代理")]),
    ("备注：舟山鑫海船舶修造有限公司 · 采购 · 汪东", [("汪东", "采购")]),
    ("经销商：符志远，说这个区域他能做", [("符志远", "经销商")]),
    ("联系人：隋红 / 采购经理", [("隋红", "采购经理")]),
    ("Name: 濮文杰\nTitle: 设备主管", [("濮文杰", "设备主管")]),
])
def test_labelled_titles(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 6. 姓X with the title nearby.
@pytest.mark.parametrize("text, expected", [
    ("女处长，姓闫", [("闫", "处长")]),
    ("姓包的工程师说要改图", [("包", "工程师")]),
    ("负责人姓乔，是个主任", [("乔", "主任")]),
    ("来的是个科长，姓贲", [("贲", "科长")]),
    ("他们主任姓窦，人挺好说话", [("窦", "主任")]),
    ("新来的厂长，姓栾，很年轻", [("栾", "厂长")]),
    ("那个姓符的老板又来问价", [("符", "老板")]),
    ("对方经理姓郜", [("郜", "经理")]),
    ("采购姓水，是个女的", [("水", "采购")]),  # a surname that is also a word, after 姓
])
def test_surname_with_title_nearby(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 7. Latin prefixes before a (traditional) surname.
@pytest.mark.parametrize("text, expected", [
    ("客户 Mr. 鄺 说下周来看样机", [("鄺", "Mr.")]),
    ("Ms. 邝 要报价单", [("邝", "Ms.")]),
    ("Dr. 钭 在开会", [("钭", "Dr.")]),
    ("Mr. 閆 确认了", [("閆", "Mr.")]),
])
def test_latin_prefix_surnames(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 8. an internal sales group: its speakers are our side.
@pytest.mark.parametrize("text, expected", [
    ("【销售二组】\n王磊: 客户说下周来\n李娜: 好的", []),
    ("【华东渠道群】\n赵强：宁波那个客户的潘总要报价\n孙悦：我来跟", [("潘", "总")]),
    ("【西北大区群】\n周涛: 银川顺达煤机的窦科长说节后定\n马丽: 收到", [("窦", "科长")]),
    ("内部群\n郑凯: 贲科长那边我去\n何静: 好", [("贲", "科长")]),
    ("【销售三部】\n吴昊：郜经理要样机\n陈晨：我安排", [("郜", "经理")]),
])
def test_internal_group_speakers(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 9. the colleague the rep addresses in a voice note.
@pytest.mark.parametrize("text, expected", [
    ("喂王哥我跟你说，客户那边定了", []),
    ("李姐你听我讲，那个潘总又变卦了", [("潘", "总")]),
    ("喂，张哥，济宁那个郜经理要样品", [("郜", "经理")]),
    ("刘姐啊，你帮我查一下上次的报价", []),
    ("潘总，确认了下周来看现场", [("潘", "总")]),  # a note about 潘总, not an address
])
def test_addressed_colleague(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 10. a name corrected away inside the same sentence.
@pytest.mark.parametrize("text, expected", [
    ("见到的是设备部的姚部长，不对是饶部长，名字叫饶建军", [("饶建军", "部长")]),
    ("跟孙经理，哦不，是宋经理谈的", [("宋", "经理")]),
    ("对接的是黄工，说错了，是方工", [("方", "工")]),
])
def test_corrected_in_sentence(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# 11. fragments of words and English field labels are not people.
@pytest.mark.parametrize("text, expected", [
    ("环保局那边要检测报告", []),
    ("医保局下周来检查", []),
    ("Account: 大连海鸿船舶工程有限公司\nIssue: 泵体渗漏\nRequested: 更换机封", []),
    ("Subject: 报价\nPriority: 高", []),
    ("公安局的人来过", []),
    ("王局说下周验收", [("王", "局")]),
])
def test_fragments_are_not_people(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert _contacts(text) == expected


# Guards on the new rules: what they must not take.
@pytest.mark.parametrize("text, contacts, companies", [
    ("客户：张总\n需求：两台伺服", [("张", "总")], []),  # a person as the customer is no company
    ("喂潘总您好，我是小李，上次说的样机到了", [("潘", "总")], []),  # a call to the customer
    ("联系了李经理，姓贲的那个工程师也在", [("李", "经理"), ("贲", "工程师")], []),
    ("5G基站电源的客户很满意", [], []),
    ("仁怀那家酱香酒业想换包装线", [], []),
    ("食品厂那边下单了", [], []),
    ("中车的所有项目都在排队", [], ["中车"]),
    ("是鑫源，不对，是鑫垣机电", [], ["鑫垣机电"]),
])
def test_new_rules_guards(text: str, contacts: list[tuple[str, str | None]], companies: list[str]) -> None:
    assert (_contacts(text), _companies(text)) == (contacts, companies)
