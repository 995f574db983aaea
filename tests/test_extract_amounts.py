"""RMB amount rules, as tables of invented phrases (not dev lines)."""

from __future__ import annotations

import pytest

from nlp.amounts import extract_amounts
from nlp.normalize import normalize


def _amounts(text: str) -> list[tuple[float, float]]:
    return [(a["yuan_min"], a["yuan_max"]) for a in extract_amounts(normalize(text))]


CASES: list[tuple[str, list[tuple[float, float]]]] = [
    # units and prefixes
    ("合同金额36万", [(360000, 360000)]),
    ("报价 1.8亿元", [(180000000, 180000000)]),
    ("每台4500元", [(4500, 4500)]),
    ("一共九百块", [(900, 900)]),
    ("对方出到45w", [(450000, 450000)]),
    ("单价能到 3.6k 吗", [(3600, 3600)]),
    ("大概六个W", [(60000, 60000)]),
    ("¥12,800 含税", [(12800, 12800)]),
    ("￥９９０", [(990, 990)]),
    ("RMB 26.5万", [(265000, 265000)]),
    ("人民币八十万", [(800000, 800000)]),
    ("30万人民币", [(300000, 300000)]),
    ("人民币伍万元整", [(50000, 50000)]),
    ("陆仟元", [(6000, 6000)]),
    # colloquial tails and compound numerals
    ("三十五万六", [(356000, 356000)]),
    ("一万二一台", [(12000, 12000)]),
    ("两千四左右", [(2400, 2400)]),
    ("七百八一套", [(780, 780)]),
    ("每只九块五", [(9.5, 9.5)]),
    ("2万6", [(26000, 26000)]),
    ("押金5千", [(5000, 5000)]),
    ("报价3千5一台", [(3500, 3500)]),
    ("投资3千万", [(30000000, 30000000)]),
    ("尾款12万月底付", [(120000, 120000)]),
    ("三万五千元", [(35000, 35000)]),
    ("约2.05亿", [(205000000, 205000000)]),
    ("四十来万", [(400000, 400000)]),
    ("十万上下", [(100000, 100000)]),
    # ranges, collapsed numerals, 几
    ("预算60-90万", [(600000, 900000)]),
    ("三到四个W", [(30000, 40000)]),
    ("15万～18万元", [(150000, 180000)]),
    ("六七十万", [(600000, 700000)]),
    ("两三百万", [(2000000, 3000000)]),
    ("二十几万", [(210000, 290000)]),
    ("几十万的单子", [(100000, 900000)]),
    ("十几万到三十万", [(110000, 300000)]),
    # one-sided bounds keep the figure
    ("不超过120万", [(1200000, 1200000)]),
    ("50w以内", [(500000, 500000)]),
    ("至少300万以上", [(3000000, 3000000)]),
    # bare figures in a per-unit price position
    ("一台4800", [(4800, 4800)]),
    ("6500一套", [(6500, 6500)]),
    ("报价 2450/台", [(2450, 2450)]),
    ("3000-4000一台", [(3000, 4000)]),
    ("三四千一台", [(3000, 4000)]),
    ("付了3000定金", [(3000, 3000)]),
    ("价格在4到5块之间", [(4, 5)]),
    # budget slang only after a budget word
    ("预算就给了五十个", [(500000, 500000)]),
    # duplicates collapse, corrected-away figures drop
    ("总价45万，45万含运费", [(450000, 450000)]),
    ("之前说的32万是记错了，应该是35万", [(350000, 350000)]),
]

NOT_AMOUNTS: list[str] = [
    "报价USD 12,000",
    "折合2.3万美元",
    "毛利率15%",
    "再让两个点",
    "打个九折",
    "首付三成",
    "下单五千只",
    "年产能20万吨",
    "三十来台设备",
    "1万小时寿命",
    "功率800W的电机",
    "分辨率4K",
    "一块PLC模块坏了",
    "两块电路板",
    "我们买了八十个",
    "型号GX-3500",
    "元旦前发货",
    "电话13800001111",
    "第3台机器",
    "一台2026年的设备",
    "10万级洁净车间",
    "坏了两块",
    "5千只螺丝",
    "第5千个客户",
    "7-10天到货",
    "转速1.2万转",
    "5万千瓦机组",
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_amounts(text: str, want: list[tuple[float, float]]) -> None:
    got = _amounts(text)
    assert len(got) == len(want)
    for (glo, ghi), (wlo, whi) in zip(got, want):
        assert glo == pytest.approx(wlo) and ghi == pytest.approx(whi)


@pytest.mark.parametrize("text", NOT_AMOUNTS)
def test_not_amounts(text: str) -> None:
    assert _amounts(text) == []


def test_span_is_original_text() -> None:
    text = "报价ＲＭＢ　１２万"
    # The extractor folds full-width forms itself; the span is cut from what was written.
    assert extract_amounts(text)[0]["text"] == "ＲＭＢ　１２万"


def test_integer_values_are_ints() -> None:
    a = extract_amounts("12.5万")[0]
    assert a["yuan_min"] == 125000 and isinstance(a["yuan_min"], int)


# Spec categories that a review of held-out-style errors showed missing (issue 4):
# collapsed neighbours after a head, Chinese decimals, spoken self-corrections,
# budget slang after 批的是, per-unit prices with 单个/一支, and offers (最多给…).
@pytest.mark.parametrize(
    "text, expected",
    [
        ("一套大概十二三万", [(120000, 130000)]),
        ("预算一千二三百万左右", [(12000000, 13000000)]),
        ("一百二三十万的样子", [(1200000, 1300000)]),
        ("三千五六一台", [(3500, 3600)]),
        ("设备预算一点二亿", [(120000000, 120000000)]),
        ("首付三点五万", [(35000, 35000)]),
        ("报价是28.5万，打错了，应该是25.8万", [(258000, 258000)]),
        ("预算四十万哦不是四十万是四十五万", [(450000, 450000)]),
        ("三十万不是小数目", [(300000, 300000)]),
        ("上面批的是一百五十个，多一分都不行", [(1500000, 1500000)]),
        ("订了二百个托盘，单个三百二", [(320, 320)]),
        ("一千二一支他不肯，最多给一千", [(1200, 1200), (1000, 1000)]),
        ("三十二三个人参加", []),
    ],
)
def test_generalised_amount_categories(text: str, expected: list[tuple[int, int]]) -> None:
    got = [(a["yuan_min"], a["yuan_max"]) for a in extract_amounts(text)]
    assert got == expected
