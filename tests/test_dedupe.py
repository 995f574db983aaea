"""Lead de-duplication: phone and company normalisation tables, duplicate decisions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from handlers.dedupe import (
    LeadKeys,
    MatchKey,
    find_duplicate,
    lead_keys,
    normalize_company,
    normalize_contact,
    normalize_phone,
    to_simplified,
)

# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13912345678", "13912345678"),
        ("139 1234 5678", "13912345678"),
        ("139-1234-5678", "13912345678"),
        ("+86 139-1234-5678", "13912345678"),
        ("+86-13912345678", "13912345678"),
        ("0086 13912345678", "13912345678"),
        ("8613912345678", "13912345678"),
        ("86 13912345678", "13912345678"),
        ("１３９１２３４５６７８", "13912345678"),  # full-width digits
        ("（＋８６）１３９ １２３４ ５６７８", "13912345678"),
        ("013912345678", "13912345678"),  # a 0 dialled before a mobile from another city
        ("0512-66881234", "0512-66881234"),
        ("(0512) 6688-1234", "0512-66881234"),
        ("０５１２－６６８８１２３４", "0512-66881234"),
        ("0512 6688 1234", "0512-66881234"),
        ("0512-66881234-806", "0512-66881234"),  # trailing extension group
        ("0512-66881234转806", "0512-66881234"),
        ("0512-66881234 分机 806", "0512-66881234"),
        ("021 6688 1234 ext. 12", "021-66881234"),
        ("010-62345678#3", "010-62345678"),
        ("+86 512 6688 1234", "0512-66881234"),  # international format drops the trunk 0
        ("+86 (0)512 66881234", "0512-66881234"),
        ("86-512-66881234", "0512-66881234"),
        ("0755-8765432", "0755-8765432"),  # 7-digit local number
        ("400-820-8820", "4008208820"),
        ("800 810 8888", "8008108888"),
    ],
)
def test_normalize_phone_accepts_variants(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "12345",
        "6688123",  # local number without area code: ambiguous across cities
        "12912345678",  # no mobile prefix 12x
        "1391234567",  # 10 digits
        "139123456789",  # 12 digits
        "+1 415 555 0100",  # foreign
        "0512-00000000",
        "0512-123",
        "微信同号",
        "139****5678",
    ],
)
def test_normalize_phone_rejects_implausible(raw: str) -> None:
    assert normalize_phone(raw) is None


def test_local_number_with_default_area() -> None:
    assert normalize_phone("6688 1234", default_area="0512") == "0512-66881234"
    assert normalize_phone("6688 1234") is None


_FULL = str.maketrans("0123456789+-() ", "０１２３４５６７８９＋－（）　")


@given(
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.sampled_from(["", "+86 ", "0086", "86", "+86-", "(+86)"]),
    st.sampled_from([(3, 8), (3, 4, 4), (11,), (4, 3, 4)]),
    st.sampled_from([" ", "-", ".", ""]),
    st.booleans(),
)
def test_mobile_formatting_never_changes_the_key(
    second: str, rest: str, prefix: str, grouping: tuple[int, ...], sep: str, full_width: bool
) -> None:
    number = "1" + second + rest
    parts, i = [], 0
    for size in grouping:
        parts.append(number[i : i + size])
        i += size
    raw = prefix + sep.join(parts)
    if full_width:
        raw = raw.translate(_FULL)
    assert normalize_phone(raw) == number


# --------------------------------------------------------------------------- companies

HENGRUI = "恒锐精密机械"


@pytest.mark.parametrize(
    "raw",
    [
        "苏州恒锐精密机械有限公司",
        "恒锐精密机械（苏州）有限公司",
        "恆銳精密機械",
        "恒锐精密机械(苏州)有限公司",
        "恒锐精密机械【苏州】",
        "江苏恒锐精密机械有限公司",
        "江苏省苏州市恒锐精密机械有限公司",
        "浙江省杭州市萧山区恒锐精密机械股份有限公司",
        "上海市恒锐精密机械有限责任公司",
        "恒锐精密机械股份有限公司",
        "恒锐精密机械集团有限公司",
        "恒锐精密机械（中国）有限公司",
        "恒锐精密机械有限公司苏州分公司",
        "恒锐精密机械厂",
        "昆山恒锐精密机械厂",
        " 恒锐 精密 机械 ",
        "恒锐精密机械有限公司。",
        "恆銳精密機械（蘇州）有限公司",
    ],
)
def test_company_variants_share_one_key(raw: str) -> None:
    assert normalize_company(raw) == HENGRUI


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ　Machinery Co., Ltd.", "abcmachinery"),
        ("ABC Machinery Co.,Ltd", "abcmachinery"),
        ("abc machinery limited", "abcmachinery"),
        ("华为技术有限公司", "华为技术"),
        ("上海电气集团股份有限公司", "电气"),  # region stripped; too short to merge on alone
        ("苏州银行", "银行"),
        ("苏州", "苏州"),  # a bare region stays a name rather than vanishing
        ("有限公司", "有限"),  # never empty, even for nonsense
        ("（苏州）", "苏州"),
        ("(有限公司)", "有限"),
        ("Co., Ltd.", "co"),
        ("", ""),
    ],
)
def test_company_table(raw: str, expected: str) -> None:
    assert normalize_company(raw) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("恒锐精密机械有限公司", "恒锐精密模具有限公司"),
        ("恒锐精密机械", "恒瑞精密机械"),
        ("苏州恒锐精密机械", "恒锐精密"),
    ],
)
def test_different_companies_stay_apart(a: str, b: str) -> None:
    assert normalize_company(a) != normalize_company(b)


def test_region_suffix_combinations() -> None:
    prefixes = ["", "苏州", "苏州市", "江苏省", "江苏省苏州市", "浙江", "上海市"]
    brackets = ["", "（苏州）", "(上海)", "（中国）"]
    suffixes = ["", "有限公司", "股份有限公司", "有限责任公司", "厂", "集团", "股份"]
    for p, b, s in itertools.product(prefixes, brackets, suffixes):
        assert normalize_company(p + HENGRUI + b + s) == HENGRUI, p + HENGRUI + b + s


def test_traditional_table() -> None:
    assert to_simplified("恆銳精密機械製造廠") == "恒锐精密机械制造厂"
    assert to_simplified("東莞華興電氣") == "东莞华兴电气"
    assert to_simplified("普通文字 abc") == "普通文字 abc"
    assert normalize_contact("張　偉") == "张伟"
    assert normalize_contact("Zhang Wei") == "zhangwei"


# --------------------------------------------------------------------------- duplicates


def _keys(id: int, *, customer: int | None = None, phone: str = "", company: str = "", contact: str = "") -> LeadKeys:
    return lead_keys(id, customer_id=customer, phone=phone, company=company, contact_name=contact)


def test_phone_match_wins_and_says_so() -> None:
    old = _keys(1, customer=7, phone="139-1234-5678", company="别的公司有限公司")
    new = _keys(2, phone="+86 13912345678", company="恒锐精密机械")
    match = find_duplicate(new, [old])
    assert match is not None
    assert match.key is MatchKey.PHONE
    assert match.existing.id == 1
    assert match.value == "13912345678"
    assert match.message == "老客户再次咨询：电话「139****5678」与客户 #7相同"


def test_company_variants_match() -> None:
    old = _keys(1, customer=3, company="苏州恒锐精密机械有限公司")
    new = _keys(2, company="恆銳精密機械")
    match = find_duplicate(new, [old])
    assert match is not None and match.key is MatchKey.COMPANY and match.value == HENGRUI
    assert "公司名「恒锐精密机械」" in match.message


def test_short_company_needs_the_contact_too() -> None:
    old = _keys(1, company="上海电气集团股份有限公司", contact="王磊")
    assert find_duplicate(_keys(2, company="北京电气有限公司", contact="李强"), [old]) is None
    match = find_duplicate(_keys(3, company="上海电气", contact="王 磊"), [old])
    assert match is not None and match.key is MatchKey.CONTACT_COMPANY


def test_switchboard_phone_is_ignored_not_merged() -> None:
    board = "0512-66880000"
    existing = [_keys(i, customer=100 + i, phone=board, company=f"客户{i}号机械有限公司") for i in range(6)]
    new = _keys(99, phone="(0512)6688 0000", company="全新精密模具有限公司")
    assert find_duplicate(new, existing) is None
    assert find_duplicate(new, existing, broad_threshold=6) is not None
    # The company key still works, and the match reports the ignored phone for the audit.
    existing.append(_keys(50, customer=9, phone="13800001111", company="全新精密模具"))
    match = find_duplicate(new, existing)
    assert match is not None and match.key is MatchKey.COMPANY and match.existing.id == 50
    assert match.ignored_phones == (board,)


def test_same_customer_many_leads_is_not_a_switchboard() -> None:
    # Six enquiries from one customer share a phone: that is one customer, keep the key.
    existing = [_keys(i, customer=5, phone="13912345678", company="恒锐") for i in range(6)]
    match = find_duplicate(_keys(99, phone="13912345678"), existing)
    assert match is not None and match.key is MatchKey.PHONE and match.existing.id == 0


def test_strongest_key_then_oldest_customer() -> None:
    existing = [
        _keys(5, company="恒锐精密机械有限公司"),
        _keys(3, customer=2, company="苏州恒锐精密机械"),
        _keys(4, customer=1, company="恆銳精密機械"),
        _keys(9, phone="13912345678", company="不相干"),
    ]
    new = _keys(10, phone="13912345678", company="恒锐精密机械")
    assert find_duplicate(new, existing).existing.id == 9  # type: ignore[union-attr]
    new_without_phone = _keys(11, company="恒锐精密机械")
    # Customers before loose leads, then the oldest record.
    assert find_duplicate(new_without_phone, existing).existing.id == 3  # type: ignore[union-attr]


def test_no_keys_no_match_and_self_excluded() -> None:
    lead = _keys(1, phone="13912345678", company="恒锐精密机械")
    assert find_duplicate(lead, [lead]) is None
    assert find_duplicate(_keys(2), [_keys(3)]) is None
    assert find_duplicate(_keys(2, phone="abc"), [_keys(3, phone="xyz")]) is None


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != ""))
@example("（苏州）")
@example("()有限公司")
def test_company_key_is_never_empty_and_width_blind(raw: str) -> None:
    import unicodedata

    key = normalize_company(raw)
    assert key == normalize_company(unicodedata.normalize("NFKC", raw))
    if len(_compact(raw)) >= 2:
        assert key


def _compact(raw: str) -> str:
    import re
    import unicodedata

    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", raw))
