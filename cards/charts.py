"""Charts for manager cards: funnel, grouped bars, radar and heatmap, as PNG bytes.

Pure functions: plain data in, PNG bytes out. Only matplotlib's object-oriented API is
used (``Figure`` + the Agg canvas, never ``pyplot``), so charts can be drawn on worker
threads, off the event loop, without sharing pyplot's global figure state.

Chinese labels need a CJK font: we ask font_manager for "Noto Sans CJK SC" (Debian's
``fonts-noto-cjk``, installed by ``.ci/run``), then a few common alternatives, and log a
warning when none is present, because every Chinese label would then render as boxes.
Every image is kept under the strictest platform upload limit (:data:`IMAGE_LIMITS`).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import matplotlib

matplotlib.use("Agg")  # headless; harmless when already chosen

from matplotlib import font_manager  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.projections.polar import PolarAxes  # noqa: E402

log = logging.getLogger("leadbot.charts")

CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Microsoft YaHei", "SimHei", "PingFang SC",
)
# Upload limits of each platform's image API, in bytes. WeCom media/upload type=image:
# 2 MB (JPG/PNG); Feishu im/v1/images: 10 MB; DingTalk media/upload image: documented
# as 1 MB for the legacy API (newer pages say 20 MB), so 1 MB, the safe reading.
IMAGE_LIMITS: dict[str, int] = {"wecom": 2 * 1024 * 1024, "feishu": 10 * 1024 * 1024, "dingtalk": 1 * 1024 * 1024}
STRICTEST_LIMIT = min(IMAGE_LIMITS.values())
DPI_STEPS: tuple[int, ...] = (130, 100, 80, 60)
PALETTE: tuple[str, ...] = ("#2f6fdb", "#f29f38", "#2ca58d", "#d9534f", "#8e6bbf", "#6c757d", "#e377c2", "#17becf")


class ChartTooLarge(ValueError):
    """Even the smallest rendering exceeds the byte limit."""


def cjk_family() -> str | None:
    """The first installed CJK font family, or None (with a warning) when there is none."""
    for family in CJK_FAMILIES:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family
    log.warning(
        "没有找到中文字体（需要 Noto Sans CJK SC，Debian: apt-get install fonts-noto-cjk），图表中的中文将显示为方框 / "
        "no CJK font found: Chinese labels will render as boxes"
    )
    return None


CJK_FAMILY = cjk_family()
_FAMILIES = [CJK_FAMILY, "DejaVu Sans"] if CJK_FAMILY else ["DejaVu Sans"]
# Set once at import, before any worker thread draws: rcParams are global.
matplotlib.rcParams["font.family"] = "sans-serif"
matplotlib.rcParams["font.sans-serif"] = _FAMILIES + [f for f in matplotlib.rcParams["font.sans-serif"] if f not in _FAMILIES]
matplotlib.rcParams["axes.unicode_minus"] = False  # CJK fonts may lack U+2212
matplotlib.rcParams["svg.fonttype"] = "none"


def _png(fig: Figure, dpi: int) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def fit(draw: Callable[[], Figure], max_bytes: int = STRICTEST_LIMIT) -> bytes:
    """Render ``draw()`` at the highest resolution of :data:`DPI_STEPS` that fits ``max_bytes``."""
    for dpi in DPI_STEPS:
        data = _png(draw(), dpi)
        if len(data) <= max_bytes:
            return data
    raise ChartTooLarge(f"chart is {len(data)} bytes at {DPI_STEPS[-1]} dpi, limit {max_bytes}")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _empty(ax: object, text: str = "暂无数据") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=16, color="#888", transform=ax.transAxes)  # type: ignore[attr-defined]
    ax.set_axis_off()  # type: ignore[attr-defined]


def funnel_png(steps: Sequence[tuple[str, int]], title: str, subtitle: str = "", max_bytes: int = STRICTEST_LIMIT) -> bytes:
    """A horizontal funnel: one bar per step, with the count and the share of the first step."""

    def draw() -> Figure:
        fig = _figure(8, 4.8)
        ax = fig.add_subplot()
        ax.set_title(title, fontsize=15, loc="left")
        if subtitle:
            fig.suptitle(subtitle, fontsize=10, color="#666", x=0.99, ha="right")
        if not steps or steps[0][1] == 0:
            _empty(ax)
            return fig
        labels = [s[0] for s in steps][::-1]
        values = [s[1] for s in steps][::-1]
        top = steps[0][1]
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(steps))][::-1]
        lefts = [(top - v) / 2 for v in values]
        ax.barh(labels, values, left=lefts, color=colors, height=0.7)
        for y, (v, left) in enumerate(zip(values, lefts)):
            ax.text(top / 2, y, f"{v}（{100 * v / top:.0f}%）", ha="center", va="center", color="white" if v > top * 0.25 else "#222",
                    fontsize=11, fontweight="bold")
        ax.set_xlim(0, top)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", labelsize=11)
        return fig

    return fit(draw, max_bytes)


def bars_png(
    categories: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str, *,
    unit: str = "%", subtitle: str = "", max_categories: int = 30, max_bytes: int = STRICTEST_LIMIT,
) -> bytes:
    """Grouped horizontal bars: one row per category (a rep, top to bottom in the given
    order), one bar per series (a metric). Beyond ``max_categories`` rows the rest are
    left out and the title says so, so a chat image stays readable."""
    shown = list(categories)[:max_categories]
    cut = len(categories) - len(shown)

    def draw() -> Figure:
        n = max(1, len(series))
        fig = _figure(8.5, max(3.5, 0.16 * len(shown) * n + 1.6))
        ax = fig.add_subplot()
        ax.set_title(title + (f"（仅显示前 {len(shown)} 位，另有 {cut} 位）" if cut else ""), fontsize=14, loc="left")
        if subtitle:
            fig.suptitle(subtitle, fontsize=10, color="#666", x=0.99, ha="right")
        if not shown or not series:
            _empty(ax)
            return fig
        bar_h = 0.8 / n
        for k, (name, values) in enumerate(series.items()):
            ys = [i - 0.4 + bar_h * (k + 0.5) for i in range(len(shown))]
            xs = [0.0 if v is None else float(v) for v in list(values)[: len(shown)]]
            ax.barh(ys, xs, height=bar_h, label=name, color=PALETTE[k % len(PALETTE)])
        ax.set_yticks(range(len(shown)), shown, fontsize=10)
        ax.set_ylim(len(shown) - 0.5, -0.5)  # first category on top, no empty margins
        ax.set_xlabel(unit)
        if unit == "%":
            ax.set_xlim(0, 100)
        fig.legend(loc="outside lower center", ncols=min(n, 4), fontsize=10, frameon=False)
        ax.grid(axis="x", alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        return fig

    return fit(draw, max_bytes)


def radar_png(
    dimensions: Sequence[str], groups: Mapping[str, Sequence[float | None]], title: str, *,
    subtitle: str = "", max_groups: int = 8, max_bytes: int = STRICTEST_LIMIT,
) -> bytes:
    """A radar (spider) chart on a 0–100 scale, one polygon per group (region or rep)."""
    shown = dict(list(groups.items())[:max_groups])
    cut = len(groups) - len(shown)

    def draw() -> Figure:
        fig = _figure(7.5, 6.5)
        ax = cast(PolarAxes, fig.add_subplot(projection="polar"))
        ax.set_title(title + (f"\n（仅显示前 {len(shown)} 组，另有 {cut} 组见文字）" if cut else ""), fontsize=15 if not cut else 13, pad=18)
        if subtitle:
            fig.suptitle(subtitle, fontsize=10, color="#666", x=0.99, ha="right")
        n = len(dimensions)
        angles = [2 * math.pi * i / n for i in range(n)] + [0.0]
        ax.set_theta_offset(math.pi / 2)
        ax.set_theta_direction(-1)
        ax.set_xticks(angles[:-1], list(dimensions), fontsize=12)
        ax.set_ylim(0, 100)
        ax.set_yticks([20, 40, 60, 80, 100], ["20", "40", "60", "80", "100"], fontsize=8, color="#888")
        if not shown:
            ax.text(0, 0, "暂无数据", ha="center", va="center", fontsize=16, color="#888")
        for k, (name, values) in enumerate(shown.items()):
            ys = [0.0 if v is None else float(v) for v in values]
            ys.append(ys[0])
            color = PALETTE[k % len(PALETTE)]
            ax.plot(angles, ys, color=color, linewidth=2, label=name)
            ax.fill(angles, ys, color=color, alpha=0.12)
        if shown:
            fig.legend(loc="outside lower center", ncols=min(len(shown), 4), fontsize=10, frameon=False)
        return fig

    return fit(draw, max_bytes)


# Green at or under the norm, amber up to twice the norm, red beyond.
NORM_CMAP = LinearSegmentedColormap.from_list("norm", [(0.0, "#2ca58d"), (0.33, "#f7f7d0"), (0.66, "#f29f38"), (1.0, "#c0392b")])
NORM_RATIO_MAX = 3.0


def heatmap_png(
    rows: Sequence[str], cols: Sequence[str], hours: Sequence[Sequence[float | None]], norms: Sequence[float], title: str, *,
    subtitle: str = "", max_bytes: int = STRICTEST_LIMIT,
) -> bytes:
    """Rows (reps) × columns (stages): each cell shows mean hours, coloured by hours / norm."""

    def draw() -> Figure:
        fig = _figure(max(7.5, 1.5 * len(cols) + 2.5), max(3.0, 0.42 * len(rows) + 1.8))
        ax = fig.add_subplot()
        ax.set_title(title, fontsize=15, loc="left")
        if subtitle:
            fig.suptitle(subtitle, fontsize=10, color="#666", x=0.99, ha="right")
        if not rows:
            _empty(ax)
            return fig
        ratio = [[float("nan") if h is None else min(h / norms[j], NORM_RATIO_MAX) for j, h in enumerate(r)] for r in hours]
        image = ax.imshow(ratio, cmap=NORM_CMAP, vmin=0, vmax=NORM_RATIO_MAX, aspect="auto")
        ax.set_xticks(range(len(cols)), [f"{c}\n(标准 {norms[j]:g}h)" for j, c in enumerate(cols)], fontsize=10)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=10)
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        for i, r in enumerate(hours):
            for j, h in enumerate(r):
                ax.text(j, i, "—" if h is None else f"{h:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if h is not None and h / norms[j] > 2.2 else "#222")
        bar = fig.colorbar(image, ax=ax, fraction=0.04)
        bar.set_label("实际 / 标准（工作小时）")
        return fig

    return fit(draw, max_bytes)
