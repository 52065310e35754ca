"""Operations: bench, audit, demo and run."""
from __future__ import annotations

import argparse
import json
import sys

from kiosk.cli.main import out_json


def register(sub) -> None:
    b = sub.add_parser("bench", help="print performance figures (not a test)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--sections", default="frames,identity,search,billing,rebuild,district",
                   help="comma list of frames,identity,search,billing,rebuild,district,console "
                        "(console: not in the default list; builds a 10^5-resident district once)")
    b.add_argument("--bench-data", help="console: the folder the big district is kept in "
                                        "(default $KIOSK_BENCH_DATA or /var/tmp/kiosk-bench)")
    b.add_argument("--requests", type=int, default=20, help="console: requests per page (p50/p95)")
    b.add_argument("--quick", action="store_true",
                   help="smaller sizes: 10 frames per size, 640x480 videos only, 10^4 search, a 1,000-resident store")
    b.set_defaults(func=cmd_bench)

    a = sub.add_parser("audit", help="the audit log; `kiosk audit verify` checks its hash chain")
    a.add_argument("what", nargs="?", choices=["verify"], help="verify: check the chain, name the first broken entry")
    a.add_argument("--since", help="YYYY-MM-DD (China Standard Time)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_audit)
    register_ui(sub)


def cmd_bench(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from kiosk import bench
    from kiosk.config import get_settings
    from kiosk.errors import ValidationError

    s = get_settings()
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    known = ("frames", "identity", "search", "billing", "rebuild", "district", "console")
    unknown = [x for x in sections if x not in known]
    if unknown:
        raise ValidationError(f"没有这个测试项：{', '.join(unknown)}", detail=f"--sections takes {', '.join(known)}")
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
                    "quick": bool(args.quick)}

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if "frames" in sections or "identity" in sections:
        engines, skipped = bench.installed_backends(s.model_dir)
        result["backends"] = {"benchmarked": sorted(engines), "skipped": skipped}
        for name, why in skipped.items():
            say(f"skipped backend {name}: {why}")
        samples = s.model_dir / "samples"
        photo = samples / "face_recognition" / "obama2.jpg"
        if "frames" in sections:
            result["frame_ms"] = {}
            for backend, eng in engines.items():
                say(f"frames: {backend} ...")
                result["frame_ms"][backend] = bench.bench_frames(backend, eng, photo, n=10 if args.quick else 60,
                                                                   profile=not args.quick)
            if "sface" in engines:
                say("frames: the kiosk against a plain YuNet + SFace pipeline, interleaved ...")
                result["vs_plain"] = bench.bench_vs_plain(engines["sface"], s.model_dir, photo,
                                                          n=10 if args.quick else 100)
        if "identity" in sections:
            from kiosk.vision.modelpacks import verify_pack

            strangers = [v for _, v in sorted(verify_pack(s.model_dir, "strangers", section="samples").items())]
            clips = [] if args.quick else bench.live_clips()
            result["identity_decided_ms"] = {}
            for backend, eng in engines.items():
                say(f"identity decided: {backend} ({'with' if clips else 'without'} the live clips) ...")
                result["identity_decided_ms"][backend] = bench.bench_identity(
                    backend, eng, Path(samples), strangers, quick=args.quick, clips=clips)
    if "search" in sections:
        sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
        say(f"search: {sizes} ...")
        result["search_ms"] = bench.bench_search(sizes, queries=200 if args.quick else 500)
    if "billing" in sections:
        say("billing: building the store ...")
        result["billing"] = (bench.bench_billing(1000, 20_000, 500) if args.quick else bench.bench_billing())
    if "rebuild" in sections:
        say("rebuild ...")
        result["gallery_rebuild_ms"] = bench.bench_rebuild(
            s.model_dir, [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    if "district" in sections:   # the district server on PostgreSQL (kiosk/bench/district.py)
        from kiosk.bench.district import bench_district
        result["district"] = bench_district(10_000 if args.quick else 100_000,
                                            orders_per_terminal=100 if args.quick else 500, say=say)
    if "console" in sections:    # the district office's reads at full size (kiosk/bench/console.py)
        from kiosk.bench.console import bench_console
        result["console"] = bench_console(10_000 if args.quick else 100_000, data_dir=args.bench_data,
                                          requests=5 if args.quick else args.requests, say=say)
    for line in bench.report_lines(result):   # the figures to read; the JSON has everything
        say(line)
    if args.json:
        out_json(result)
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from datetime import datetime

    from kiosk.db.audit import entries_since
    from kiosk.services.context import App
    from kiosk.timeutil import CST

    if getattr(args, "what", None) == "verify":
        from kiosk.cli.audit_verify import cmd_audit_verify

        return cmd_audit_verify(args)
    since = None
    if args.since:
        from kiosk.timeutil import parse_day

        since = datetime.combine(parse_day(args.since, "--since"), datetime.min.time(), CST)
    app = App()
    with app.db.session() as s:
        rows = [{"at": e.at.astimezone(CST).isoformat(), "actor": e.actor, "action": e.action,
                 "subject": e.subject, "detail": e.detail} for e in entries_since(s, since)]
    if args.json:
        out_json(rows)
    else:
        for r in rows:
            print(f"{r['at']}  {r['actor']:10} {r['action']:28} {r['subject'] or ''} {r['detail'] or ''}")
    return 0


def register_ui(sub) -> None:
    r = sub.add_parser("run", help="start the kiosk")
    r.add_argument("--source", default=None, help="camera index, video file, image folder or RTSP/HTTP URL (default 0)")
    r.add_argument("--windowed", action="store_true")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("demo", help="a demo canteen with a generated camera (no camera needed)")
    d.add_argument("--windowed", action="store_true")
    d.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    d.add_argument("--no-autopilot", action="store_true", help="do not tap through the flow by itself")
    d.add_argument("--sales", type=int, default=None, metavar="N",
                   help="stop once the autopilot has served N meals (the known elder, then the card path)")
    d.add_argument("--keep", action="store_true", help="keep the demo canteen's folder after exit (to look at it "
                   "with KIOSK_HOME=FOLDER/home kiosk ...)")
    d.set_defaults(func=cmd_demo)


def cmd_run(args: argparse.Namespace) -> int:
    from kiosk.ui.app import run

    return run(args.source, args.windowed)


def cmd_demo(args: argparse.Namespace) -> int:
    import os

    from kiosk.ui.app import run

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        print("no display found: running offscreen (set DISPLAY to see the window); "
              "what the kiosk says and decides is printed here", flush=True)
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        import logging

        for name in ("kiosk.ui.voice", "kiosk.ui.main_window"):   # the flow, told on the console
            logging.getLogger(name).setLevel(logging.INFO)
    if args.sales is not None and (args.sales < 1 or args.no_autopilot):
        print("--sales needs a number of 1 or more, and the autopilot (it counts the meals it serves)",
              file=sys.stderr)
        return 2
    return run(None, args.windowed, demo=True, seconds=args.seconds, autopilot=not args.no_autopilot,
               keep_demo=args.keep, sales=args.sales)
