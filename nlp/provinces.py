"""China's 34 province-level divisions, by official full name, with the short forms people write."""

from __future__ import annotations

import unicodedata

# Official full name -> the short forms that also denote it.
PROVINCES: dict[str, tuple[str, ...]] = {
    "北京市": ("北京", "京"), "天津市": ("天津", "津"), "上海市": ("上海", "沪"), "重庆市": ("重庆", "渝"),
    "河北省": ("河北", "冀"), "山西省": ("山西", "晋"), "辽宁省": ("辽宁", "辽"), "吉林省": ("吉林", "吉"),
    "黑龙江省": ("黑龙江", "黑"), "江苏省": ("江苏", "苏"), "浙江省": ("浙江", "浙"), "安徽省": ("安徽", "皖"),
    "福建省": ("福建", "闽"), "江西省": ("江西", "赣"), "山东省": ("山东", "鲁"), "河南省": ("河南", "豫"),
    "湖北省": ("湖北", "鄂"), "湖南省": ("湖南", "湘"), "广东省": ("广东", "粤"), "海南省": ("海南", "琼"),
    "四川省": ("四川", "川", "蜀"), "贵州省": ("贵州", "黔", "贵"), "云南省": ("云南", "滇", "云"),
    "陕西省": ("陕西", "陕", "秦"), "甘肃省": ("甘肃", "甘", "陇"), "青海省": ("青海", "青"),
    "台湾省": ("台湾", "台"), "内蒙古自治区": ("内蒙古", "内蒙", "蒙"),
    "广西壮族自治区": ("广西", "桂", "广西自治区"), "西藏自治区": ("西藏", "藏"),
    "宁夏回族自治区": ("宁夏", "宁", "宁夏自治区"), "新疆维吾尔自治区": ("新疆", "新", "新疆自治区"),
    "香港特别行政区": ("香港", "港"), "澳门特别行政区": ("澳门", "澳"),
}

_LOOKUP: dict[str, str] = {}
for _full, _shorts in PROVINCES.items():
    _LOOKUP[_full] = _full
    for _s in _shorts:
        # One-character abbreviations are ambiguous in free text; accept them only from forms.
        _LOOKUP.setdefault(_s, _full)


def canonical_province(name: str) -> str | None:
    """The official full name for ``name`` (``浙江`` → ``浙江省``), or None if it is not a province."""
    key = unicodedata.normalize("NFKC", name or "").strip().replace(" ", "")
    return _LOOKUP.get(key)
