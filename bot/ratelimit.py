"""Rate limits the platforms impose, as each adapter declares them.

Platforms drop messages silently past their per-member limits (WeCom: 30 per minute per
member per app). Each adapter declares its limits as :class:`RateRule` values in
``rate_limits``; the gateway counts every send against them in the database
(``store/ratelimits.py``), so they hold for all processes sharing one database::

    rate_limits = (RateRule(30, 60), RateRule(1000, 3600, slot_s=60))
"""

from __future__ import annotations

from store.ratelimits import RateRule

__all__ = ["RateRule"]
