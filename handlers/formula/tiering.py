"""Map a score to a tier name by ordered thresholds: exact, pure, no float."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


def _exact(value: object, what: str) -> Decimal:
    """Decimal from int, Decimal or a decimal string; floats are refused (0.1 is not exact)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{what} 必须是整数、Decimal 或数字字符串，不能是 {type(value).__name__} "
                         f"({what} must be int, Decimal or a decimal string)")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{what} `{value}` 不是数字 ({what} is not a number)") from None
    else:
        raise ValueError(f"{what} 的类型 {type(value).__name__} 不支持 ({what} has unsupported type)")
    if not result.is_finite():
        raise ValueError(f"{what} 必须是有限的数字 ({what} must be finite)")
    return result


@dataclass(frozen=True)
class Tiering:
    """Ordered thresholds, highest first: the first threshold the score reaches names the tier.

    >>> tiers = Tiering.of([(80, "战略级"), (60, "重点跟进"), (40, "培育中")], default="暂缓")
    >>> tiers.tier(Decimal("79.99")), tiers.tier(80)
    ('重点跟进', '战略级')
    """

    thresholds: tuple[tuple[Decimal, str], ...]
    default: str

    def __post_init__(self) -> None:
        previous: Decimal | None = None
        for minimum, name in self.thresholds:
            if not isinstance(minimum, Decimal) or not name:
                raise ValueError("每一档需要一个 Decimal 门槛和一个名称 (each tier needs a Decimal minimum and a name)")
            if previous is not None and minimum >= previous:
                raise ValueError(
                    f"分档门槛必须从高到低排列: {previous} 之后是 {minimum} "
                    f"(tier thresholds must be strictly descending: {previous} then {minimum})"
                )
            previous = minimum
        if not self.default:
            raise ValueError("需要一个默认档位名称 (a default tier name is required)")

    @classmethod
    def of(cls, thresholds: Iterable[tuple[int | str | Decimal, str]], *, default: str) -> Tiering:
        """Build from (minimum, name) pairs given highest first; minimums as int, str or Decimal."""
        pairs = tuple((_exact(minimum, "分档门槛"), name) for minimum, name in thresholds)
        return cls(pairs, default)

    def tier(self, score: int | str | Decimal) -> str:
        """Name of the tier whose minimum ``score`` reaches (score ≥ minimum), else the default."""
        value = _exact(score, "分数")
        for minimum, name in self.thresholds:
            if value >= minimum:
                return name
        return self.default

    __call__ = tier

    @property
    def names(self) -> tuple[str, ...]:
        """All tier names, best first, the default last."""
        return tuple(name for _, name in self.thresholds) + (self.default,)
