"""Charts: real PNGs, under every platform's upload limit, drawn with the CJK font (no boxes)."""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable

import pytest
from matplotlib import font_manager
from PIL import Image

from cards import charts

DIMS = ["信息完整性", "响应及时性", "需求明确度", "行业匹配度", "历史互动性"]
STAGES = ["待分配", "待筛选", "待首触", "待确认需求", "待转商机"]
REPS = [f"销售{n:02d}号" for n in range(60)]


def _funnel() -> bytes:
    return charts.funnel_png([("线索", 120), ("24h内分配", 110), ("24h内首次筛选", 90), ("24h内首次触达", 60), ("24h内需求确认", 25)],
                             "24小时动作漏斗 · 华东 · 本周", "2026-03-09 00:00 至 2026-03-10 10:00")


def _radar() -> bytes:
    return charts.radar_png(DIMS, {"华东": [80, 60, 40, 90, 50], "华南": [70, 75, 30, 60, 65], "华北": [55, 40, None, 70, 30]}, "线索健康度 · 按区域")


def _heatmap() -> bytes:
    rows = REPS  # a full sales force: the tallest chart we draw
    hours = [[(i * 7 + j * 13) % 50 / 2 if (i + j) % 7 else None for j in range(5)] for i in range(len(rows))]
    return charts.heatmap_png(rows, STAGES, hours, [1, 2, 8, 45, 45], "流程热力图 · 本月")


def _bars() -> bytes:
    return charts.bars_png(REPS, {"黑洞率": [i % 40 for i in range(60)], "激活率": [(i * 3) % 100 for i in range(60)],
                                  "首触转化率": [None if i % 5 == 0 else i for i in range(60)]}, "团队看板 · 全公司 · 本月")


CHARTS: dict[str, Callable[[], bytes]] = {"funnel": _funnel, "radar": _radar, "heatmap": _heatmap, "bars": _bars}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_is_a_png_under_every_platform_limit(name: str) -> None:
    data = CHARTS[name]()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.width >= 600 and image.height >= 300
    for platform, limit in charts.IMAGE_LIMITS.items():
        assert len(data) <= limit, f"{name} is {len(data)} bytes, over {platform}'s {limit}"
    # Feishu also refuses images over 12000 px a side.
    assert max(image.size) <= 12000


def test_platform_limits_are_the_documented_ones() -> None:
    assert charts.IMAGE_LIMITS == {"wecom": 2 * 1024 * 1024, "feishu": 10 * 1024 * 1024, "dingtalk": 1024 * 1024}
    assert charts.STRICTEST_LIMIT == 1024 * 1024


def test_the_cjk_font_is_installed_and_chosen() -> None:
    assert charts.CJK_FAMILY == "Noto Sans CJK SC", "CI installs fonts-noto-cjk (see .ci/run)"
    path = font_manager.findfont(font_manager.FontProperties(family="Noto Sans CJK SC"), fallback_to_default=False)
    assert "NotoSansCJK" in path.replace("-", "").replace("_", "") or "CJK" in path
    # Every label's family list resolves Chinese to that file first.
    first = font_manager.findfont(font_manager.FontProperties(family=charts.matplotlib.rcParams["font.sans-serif"][0]))
    assert first == path


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_no_missing_glyph_warnings(name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CHARTS[name]()
    missing = [str(w.message) for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert missing == []


def test_the_glyph_check_can_fail_without_the_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same chart with only DejaVu Sans must warn about missing glyphs: proof that the
    # check above would notice boxes.
    monkeypatch.setitem(charts.matplotlib.rcParams, "font.sans-serif", ["DejaVu Sans"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _funnel()
    assert any("missing from" in str(w.message) for w in caught)


def test_missing_font_is_reported_clearly(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def nothing(*_a: object, **_k: object) -> str:
        raise ValueError("not found")

    monkeypatch.setattr(charts.font_manager, "findfont", nothing)
    with caplog.at_level("WARNING", logger="leadbot.charts"):
        assert charts.cjk_family() is None
    assert "fonts-noto-cjk" in caplog.text


def test_fit_lowers_resolution_to_meet_a_limit() -> None:
    big = _radar()
    small = charts.radar_png(DIMS, {"华东": [80, 60, 40, 90, 50], "华南": [70, 75, 30, 60, 65], "华北": [55, 40, None, 70, 30]},
                             "线索健康度 · 按区域", max_bytes=len(big) - 1)
    assert len(small) < len(big)
    assert Image.open(io.BytesIO(small)).width < Image.open(io.BytesIO(big)).width
    with pytest.raises(charts.ChartTooLarge):
        charts.funnel_png([("线索", 3)], "太小的限制", max_bytes=100)


def test_empty_data_still_draws_a_chart() -> None:
    for data in (charts.funnel_png([], "无数据"), charts.radar_png(DIMS, {}, "无数据"), charts.heatmap_png([], STAGES, [], [1] * 5, "无数据"),
                 charts.bars_png([], {}, "无数据")):
        assert Image.open(io.BytesIO(data)).format == "PNG"


def test_charts_draw_concurrently_on_worker_threads() -> None:
    heatmaps: list[bytes] = []
    funnels: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            heatmaps.append(_heatmap())
            funnels.append(_funnel())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(heatmaps) == len(funnels) == 4
    assert len(set(heatmaps)) == 1 and len(set(funnels)) == 1, "the same chart drawn on four threads is the same image"
