"""`kiosk` command line. Names and JSON keys are an interface other tools use."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from kiosk.errors import KioskError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def out_json(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def fail(err: KioskError, as_json: bool) -> int:
    if as_json:
        d = {"error": err.user_message, "detail": err.detail, "type": type(err).__name__}
        for k in ("other_resident_id", "other_name", "score", "problems", "retryable"):
            v = getattr(err, k, None)
            if v is not None:
                d[k] = v
        out_json(d)
    else:
        print(f"错误：{err.user_message}", file=sys.stderr)
        if err.detail:
            print(f"  detail: {err.detail}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from kiosk.cli import commands_billing, commands_faces, commands_ops

    p = argparse.ArgumentParser(prog="kiosk", description="长寿食堂 刷脸助餐 kiosk")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in (commands_faces, commands_billing, commands_ops):
        mod.register(sub)
    from kiosk.cli import commands_district; commands_district.register(sub)  # noqa: E702 (the district, after `report`)
    from kiosk.cli import commands_console; commands_console.register(sub)  # noqa: E702 (the console's reports)
    from kiosk.cli import commands_service; commands_service.register(sub)  # noqa: E702 (systemd units)
    from kiosk.cli import commands_backup; commands_backup.register(sub)  # noqa: E702 (backup, restore)
    from kiosk.cli import commands_staff_password; commands_staff_password.register(sub)  # noqa: E702 (after `staff`)
    from kiosk.cli import commands_canteen; commands_canteen.register(sub)  # noqa: E702 (after `canteen`)
    from kiosk.cli import commands_anomalies; commands_anomalies.register(sub)  # noqa: E702 (after `report`)
    from kiosk.cli import commands_quarantine; commands_quarantine.register(sub)  # noqa: E702 (待核查, after `report`)
    from kiosk.cli import commands_meals; commands_meals.register(sub)  # noqa: E702 (报餐, after `report`)
    from kiosk.cli import commands_offline; commands_offline.register(sub)  # noqa: E702 (离线限额, 挂失名单)
    from kiosk.cli import commands_overview; commands_overview.register(sub)  # noqa: E702 (概览, after `report`)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KioskError as err:
        return fail(err, getattr(args, "json", False))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
