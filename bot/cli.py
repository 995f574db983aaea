"""The ``leadbot`` command (contract: see README)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import sys
from datetime import datetime
from importlib import resources
from pathlib import Path

from aiohttp import web

from bot import config as config_mod
from bot.config import ConfigError, Settings

log = logging.getLogger("leadbot")

DEMO_LEADS = (
    {"company": "苏州恒锐精密机械有限公司", "contact": "王建国", "phone": "13912345678", "province": "江苏", "city": "苏州市", "industry": "新能源汽车", "budget": "60万", "source": "官网表单", "note": "询价伺服压装机，下月要方案"},
    {"company": "东莞捷联电子科技有限公司", "contact": "陈敏", "phone": "0769-22881234", "province": "广东", "city": "东莞市", "industry": "电子制造", "budget": 150000, "source": "展会", "note": "SMT 产线 AOI 检测"},
    {"company": "天津滨海重工阀门厂", "contact": "刘志强", "phone": "13820001111", "province": "天津", "industry": "化工", "budget": "35万", "source": "电话", "note": "高压球阀替换进口"},
)


def _template_text() -> str:
    return resources.files("bot").joinpath("templates/leadbot.toml").read_text(encoding="utf-8")


def _load(path: str) -> Settings:
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        print(f"配置错误 / config error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented leadbot.toml and create the database."""
    target = Path(args.dir)
    target.mkdir(parents=True, exist_ok=True)
    cfg = target / "leadbot.toml"
    if cfg.exists() and not args.force:
        print(f"{cfg} 已存在，未覆盖（使用 --force 覆盖）/ exists, not overwritten", file=sys.stderr)
    else:
        cfg.write_text(_template_text(), encoding="utf-8")
        print(f"已写入配置 / wrote {cfg}")
    settings = _load(str(cfg))
    from store.db import upgrade

    upgrade(settings.database_url)
    print(f"数据库已就绪 / database ready: {settings.database_url}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Schema migrations."""
    settings = _load(args.config)
    from store.db import upgrade

    upgrade(settings.database_url)
    print(f"数据库已升级到最新 / database upgraded: {settings.database_url}")
    return 0


def _run_server(settings: Settings, banner: str) -> int:
    from bot.app import SchemaOutOfDate, create_app
    from handlers.context import SystemClock
    from nlp.extract import extract

    # Build the lexicons before listening: done lazily, the first chat message after a
    # start would hold the event loop for 0.3-0.6 s and every ack would wait behind it.
    extract("张总确认下周三看产线，预算50万，电话13912345678。", SystemClock().now())
    app = create_app(settings)

    def announce(_default_message: str) -> None:
        # run_app calls this once the socket is listening, so the URL works when shown.
        # Freezing the start-up heap keeps full GC passes (70-120 ms stalls) off the callback p99.
        gc.collect()
        gc.freeze()
        print(banner, flush=True)

    try:
        web.run_app(app, host=settings.host, port=settings.port, print=announce, access_log=None)
    except SchemaOutOfDate as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"无法监听 {settings.host}:{settings.port}: {exc.strerror} / cannot listen", file=sys.stderr)
        return 2
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Gateway, delivery worker and scheduler in one process."""
    settings = _load(args.config)
    if not settings.intake_sources:
        log.warning("POST /api/leads 未配置来源密钥，任何人都能提交线索；请在 [intake.sources] 中配置 / lead intake is open")
    return _run_server(settings, f"leadbot 已启动 / listening on http://{settings.host}:{settings.port}/")


def seed_demo(settings: Settings, now: datetime) -> list[int]:
    """Create the demo organisation's sample leads (the cards go to the reps' sandbox chats)."""
    from bot.app import handler_context, org_rows
    from bot.gateway import Gateway
    from handlers import leads
    from handlers.context import SystemClock
    from store.db import Database
    from store.org import sync_org

    db = Database(settings.database_url)
    try:
        regions, members = org_rows(settings)
        ctx = handler_context(settings, SystemClock())
        gateway = Gateway(db, ctx, [])
        ids = []

        def seed(session: object) -> None:
            sync_org(session, regions, members, now)  # type: ignore[arg-type]
            for data in DEMO_LEADS:
                result = leads.intake(session, leads.validate_form(data), ctx)  # type: ignore[arg-type]
                gateway.enqueue(session, result.outgoing, now)  # type: ignore[arg-type]
                ids.append(result.lead_id)

        db.transaction(seed)  # type: ignore[arg-type]
        return ids
    finally:
        db.close()


def cmd_demo(args: argparse.Namespace) -> int:
    """A demo organisation on an embedded SQLite file, with the sandbox chat."""
    demo_dir = Path(args.dir)
    if args.reset and demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True, exist_ok=True)
    cfg = demo_dir / "leadbot.toml"
    fresh = not (demo_dir / "leadbot.db").exists()
    if not cfg.exists():
        text = _template_text().replace('secret = ""', f'secret = "{__import__("secrets").token_hex(24)}"', 1)
        cfg.write_text(text, encoding="utf-8")
    settings = _load(str(cfg))
    settings = Settings(**{**settings.__dict__, "port": args.port, "host": args.host})
    from handlers.context import SystemClock
    from store.db import upgrade

    upgrade(settings.database_url)
    if fresh:
        ids = seed_demo(settings, SystemClock().now())
        print(f"已创建演示组织（3 个区域、3 位经理、8 位销售）和 {len(ids)} 条示例线索")
    url = f"http://{settings.host}:{settings.port}/sandbox/"
    return _run_server(settings, f"leadbot 演示已启动 / demo running: {url}\n数据目录 / data: {demo_dir.resolve()}\n按 Ctrl+C 退出")


def read_table(path: Path) -> list[dict[str, object]]:
    """Rows of a .csv (UTF-8 with or without BOM, or GBK as Excel writes it) or .xlsx file."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        if not values:
            return []
        headers = [str(h or "").strip() for h in values[0]]
        return [{h: ("" if v is None else v) for h, v in zip(headers, row)} for row in values[1:]]
    if suffix == ".csv":
        import csv
        import io

        raw = path.read_bytes()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ValueError("文件编码无法识别（请另存为 UTF-8 CSV）/ unknown encoding")
        return [dict(r) for r in csv.DictReader(io.StringIO(text))]
    raise ValueError("只支持 .csv 和 .xlsx 文件 / only .csv and .xlsx are supported")


def cmd_import(args: argparse.Namespace) -> int:
    """Bulk lead intake with a per-row report of rejects."""
    from bot.app import handler_context, org_rows
    from bot.gateway import Gateway
    from handlers.context import SystemClock
    from handlers.imports import import_rows
    from store.db import Database
    from store.org import sync_org

    settings = _load(args.config)
    path = Path(args.file)
    try:
        rows = read_table(path)
    except FileNotFoundError:
        print(f"文件不存在 / no such file: {path}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"无法读取 {path}: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        ctx = handler_context(settings, SystemClock())
        gateway = Gateway(db, ctx, [])

        regions, members = org_rows(settings)

        def take(session: object) -> object:
            # The organisation may have changed in the file since the server last started.
            sync_org(session, regions, members, ctx.clock.now())  # type: ignore[arg-type]
            report, out = import_rows(session, rows, ctx, source=args.source)  # type: ignore[arg-type]
            gateway.enqueue(session, out, ctx.clock.now())  # type: ignore[arg-type]
            return report

        report = db.transaction(take)  # type: ignore[arg-type]
    finally:
        db.close()
    print(report.summary_zh())  # type: ignore[attr-defined]
    return 1 if report.missing_columns else 0  # type: ignore[attr-defined]


def cmd_scan(args: argparse.Namespace) -> int:
    """Run every scheduler scan once, as of ``--now``, and print what each did."""
    from bot.app import handler_context, org_rows
    from bot.gateway import Gateway
    from handlers.context import FakeClock, SystemClock
    from scheduler.scans import describe, parse_now, run_all
    from store.db import Database
    from store.org import sync_org

    settings = _load(args.config)
    try:
        now = parse_now(args.now) if args.now else SystemClock().now()
    except ValueError:
        print(f"--now 不是 ISO 时间，例如 2026-03-10T09:00:00+08:00 / invalid --now: {args.now}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        ctx = handler_context(settings, FakeClock(now))
        gateway = Gateway(db, ctx, [])
        regions, members = org_rows(settings)
        db.transaction(lambda s: sync_org(s, regions, members, now))
        counts = run_all(db, ctx, now, gateway.enqueue, settings.scheduler)
    finally:
        db.close()
    print(describe(counts, now))
    print(f"共 {sum(max(0, n) for n in counts.values())} 条消息进入发件箱，由运行中的服务投递。")
    return 1 if any(n < 0 for n in counts.values()) else 0


def cmd_extract(args: argparse.Namespace) -> int:
    """JSON lines in, predictions out (see nlp/extract.py)."""
    from nlp.extract import run_jsonl

    default_now = datetime.fromisoformat(args.now) if args.now else None
    run_jsonl(sys.stdin, sys.stdout, default_now)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The manager report's figures from the command line (see docs/metrics.zh.md)."""
    from datetime import date

    from handlers import metrics, reports
    from handlers.context import SystemClock
    from store.db import Database

    settings = _load(args.config)
    try:
        since = date.fromisoformat(args.since)
        until = date.fromisoformat(args.until) if args.until else None
    except ValueError:
        print("日期格式应为 YYYY-MM-DD / dates must be YYYY-MM-DD", file=sys.stderr)
        return 2
    now = datetime.fromisoformat(args.now) if args.now else SystemClock().now()
    if now.tzinfo is None:
        print("--now 需要带时区，例如 2026-03-16T10:00+08:00 / --now needs a time zone", file=sys.stderr)
        return 2
    period = metrics.Period.since(since, now, until)
    scope = metrics.Scope(region=args.region, rep=args.rep)
    db = Database(settings.database_url)
    try:
        summary = db.transaction(lambda s: metrics.summary(s, now, period, scope, settings.assignment.business_hours, settings.metrics))
    finally:
        db.close()
    if args.format == "png":
        data: bytes | str = reports.summary_chart(summary, args.chart)
    elif args.format == "json":
        data = json.dumps(summary.to_dict(), ensure_ascii=False, indent=2) + "\n"
    elif args.format == "csv":
        data = reports.summary_csv(summary)
    else:
        data = reports.summary_text(summary)
    if args.out:
        Path(args.out).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        print(f"已写入 / wrote {args.out}", file=sys.stderr)
    elif isinstance(data, bytes):
        print("PNG 需要 --out 文件 / --format png needs --out FILE", file=sys.stderr)
        return 2
    else:
        sys.stdout.write(data)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="leadbot", description="leadbot：活在企业微信、飞书、钉钉里的销售 CRM")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="写入带注释的 leadbot.toml 并创建数据库")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--force", action="store_true", help="覆盖已有的 leadbot.toml")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="启动服务（回调网关、投递、定时任务）")
    p.add_argument("-c", "--config", default="leadbot.toml")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="启动演示组织和网页聊天沙盒")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dir", default=".leadbot-demo", help="演示数据目录")
    p.add_argument("--reset", action="store_true", help="清空演示数据重新开始")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("db", help="数据库维护")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="执行数据库迁移")
    up.add_argument("-c", "--config", default="leadbot.toml")
    up.set_defaults(func=cmd_db)

    p = sub.add_parser("import", help="从 CSV / XLSX 批量导入线索，并逐行报告被拒原因")
    p.add_argument("file")
    p.add_argument("--source", help="来源标签，例如 展会（文件中没有来源列时使用）")
    p.add_argument("-c", "--config", default="leadbot.toml")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("report", help="输出过程指标报表（文本 / JSON / CSV / PNG 图表）")
    p.add_argument("--since", required=True, help="统计自该日起创建的线索（YYYY-MM-DD）")
    p.add_argument("--until", help="统计截至该日（含），默认到现在")
    p.add_argument("--format", choices=("text", "json", "csv", "png"), default="text")
    p.add_argument("--chart", choices=("funnel", "team", "radar", "heatmap"), default="funnel", help="--format png 时的图表")
    p.add_argument("--region", help="只看某个区域")
    p.add_argument("--rep", help="只看某位销售（成员 id）")
    p.add_argument("--now", help="统计时刻（ISO 8601，带时区），默认现在")
    p.add_argument("--out", help="写入文件（png 必填）")
    p.add_argument("-c", "--config", default="leadbot.toml")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("scan", help="按指定时间把所有定时扫描跑一遍，并打印结果")
    p.add_argument("--now", help="ISO 8601 时间（带时区），默认现在")
    p.add_argument("-c", "--config", default="leadbot.toml")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("extract", help="从标准输入的 JSON 行中抽取跟进字段")
    p.add_argument("--now", help="参考时间（ISO 8601），用于没有 now 字段的输入")
    p.set_defaults(func=cmd_extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``leadbot`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
