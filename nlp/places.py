"""Where the customer is: province and city from explicit place names in a message.

The table of administrative divisions is data (``nlp/data/places.txt``): provinces, their
prefecture-level cities, and the county-level cities and districts that map up to them
(诸暨 → 绍兴市, 萧山 → 杭州市, 青浦 → 上海市). One alternation regex over every name, longest
first, finds the mentions; the first one that is about the customer or the site wins.
No world knowledge: a company known to be somewhere, an area code or a foreign country gives
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nlp.lexicon import to_simplified, word_alternation

PLACES_FILE = Path(__file__).parent / "data" / "places.txt"

_PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")
_CITY_SUFFIXES = ("市", "地区", "盟")
_COUNTY_SUFFIXES = ("区", "县", "市", "新区")


@dataclass(frozen=True)
class Place:
    """What a place name denotes: a province and, unless it names a province only, a city."""

    province: str
    city: str | None


@dataclass(frozen=True)
class PlaceTable:
    """Every place name → :class:`Place`, plus the compiled matcher (blockers map to None)."""

    names: dict[str, Place | None]
    pattern: re.Pattern[str]


def _province_stem(full: str) -> str:
    for suffix in _PROVINCE_SUFFIXES:
        if full.endswith(suffix) and len(full) > len(suffix) + 1:
            return full[: -len(suffix)]
    return full


def load_places(path: Path = PLACES_FILE) -> PlaceTable:
    """Read the divisions table (see the file's header for its format) and compile the matcher."""
    names: dict[str, Place | None] = {}
    province_names: dict[str, Place] = {}
    blockers: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            blockers.extend(line[1:].split())
            continue
        parts = [p.strip() for p in line.split("|")]
        province, city, others = parts[0], parts[1], (parts[2].split() if len(parts) > 2 else [])
        prov_place = Place(province, None)
        for n in (province, _province_stem(province)):
            province_names[n] = prov_place
        if city == "-":
            for n in others:
                province_names[n] = prov_place
            continue
        place = Place(province, city)
        names[city] = place
        for suffix in _CITY_SUFFIXES:
            if city.endswith(suffix) and len(city) - len(suffix) >= 2:
                names.setdefault(city[: -len(suffix)], place)
        for n in others:
            names[n] = place
            # A bare stem also matches with its administrative suffix written out (萧山区).
            if not n.endswith(("区", "县", "市", "州", "镇", "盟")) and len(n) >= 2:
                for suffix in _COUNTY_SUFFIXES:
                    names.setdefault(n + suffix, place)
    # A province's own name beats a same-named city stem (吉林 → 吉林省; 吉林市 stays the city),
    # except for municipalities where both are the same place.
    for n, p in province_names.items():
        existing = names.get(n)
        if existing is not None and existing.city == existing.province:
            continue
        names[n] = p
    for b in blockers:
        names[b] = None
    alternation = word_alternation(list(names))
    # A leading character class lets ``re`` skip, in C, every position where no name can start.
    first = "".join(sorted({re.escape(n[0]) for n in names}))
    return PlaceTable(names, re.compile(f"(?=[{first}]){alternation}"))


_TABLE = load_places()

# The rep's own trip or location: "我明天要去宜昌", "我在苏州出差". Such a place is not the customer's.
_OWN_TRIP = re.compile(r"我(?:们)?[^，。！？,.!?\n]{0,6}?(?:去|到|回|在|飞|出差)$|(?:我们|我司|我们的|咱们)$")
_OUR_SITE = ("我们", "我司", "我们的", "咱们")


def extract_place(text: str) -> tuple[str | None, str | None]:
    """The customer's (province, city) as official full names, or (None, None).

    The first place mention that is not the rep's own trip wins; a province alone gives
    ``(province, None)`` unless a city of that province follows in the same message.
    """
    table = _TABLE
    text = to_simplified(text)  # 澳門, 廈門 match as 澳门, 厦门
    # 我们 is the customer in the customer's own words (an e-mail that says 你们 to us).
    customer_speaks = "你们" in text or "贵司" in text
    first_province: Place | None = None
    for m in table.pattern.finditer(text):
        place = table.names[m.group(0)]
        if place is None:
            continue
        head = text[max(0, m.start() - 12): m.start()]
        own = _OWN_TRIP.search(head)
        if own and not (customer_speaks and own.group(0) in _OUR_SITE):
            continue  # the rep's own trip or site; 我们闵行工厂 in the customer's words is theirs
        if place.city is None:
            if first_province is None:
                first_province = place
            continue
        if first_province is not None and first_province.province != place.province:
            # A province then a city elsewhere: the first mention decides.
            return first_province.province, None
        return place.province, place.city
    if first_province is not None:
        return first_province.province, None
    return None, None


def province_of(city: str) -> str | None:
    """The province of an official city name (``绍兴市`` → ``浙江省``), or None if unknown."""
    place = _TABLE.names.get(city)
    return place.province if place else None
