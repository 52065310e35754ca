"""`kiosk report anomalies`: the month's 异常线索 (kiosk.district.domain.anomalies), and the
admin's thresholds (`--set NAME=VALUE ... --staff ADM`, audited)."""
from __future__ import annotations

import argparse

from kiosk.cli.main import out_json


def register(sub) -> None:
    report = sub.choices.get("report")
    if report is None:
        return
    rsub = next(x for x in report._actions if isinstance(x, argparse._SubParsersAction))
    an = rsub.add_parser("anomalies", help="the district server: a month's leads of false claims (异常线索)")
    an.add_argument("--month", help="YYYY-MM (the scan)")
    an.add_argument("--set", dest="set_values", action="append", metavar="NAME=VALUE", default=[],
                    help="set a threshold (admin, --staff; e.g. travel_minutes=30); see --thresholds")
    an.add_argument("--thresholds", action="store_true", help="show the thresholds in force and what each means")
    an.add_argument("--district", help="whose settings (default: the district of the server's canteens)")
    an.add_argument("--staff", help="with --set: the acting admin; the password is asked (scripts: KIOSK_STAFF_PASSWORD)")
    an.add_argument("--json", action="store_true")
    an.set_defaults(func=cmd_anomalies)


def cmd_anomalies(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kiosk.cli.commands_district import _server_app
    from kiosk.district.domain import anomalies as an
    from kiosk.errors import PermissionDeniedError, ValidationError

    app = _server_app()
    try:
        if a.set_values:
            if not a.staff:
                raise PermissionDeniedError("设置阈值需要写明经办人：--staff 工号（管理员），并输入其密码",
                                            detail="--set needs --staff (an admin) and the password")
            values = {}
            for item in a.set_values:
                name, sep, value = item.partition("=")
                if not sep:
                    raise ValidationError(f"--set 应写成 名称=数值，不是「{item[:40]}」", detail=f"--set {item!r}")
                values[name.strip()] = value
            for k, v in values.items():       # every value checked before the password is asked
                an.check_threshold(k, v)
            from kiosk.cli.staffpin import prove

            actor = prove(app, a.staff, min_role="admin")
            th = an.set_thresholds(app, values, actor, a.district)
            if a.json:
                out_json({"thresholds": asdict(th), "set": sorted(values)})
            else:
                for k in sorted(values):
                    print(f"{k} = {getattr(th, k)}（{an.THRESHOLD_INFO[k][2]}）")
            return 0
        if a.thresholds or not a.month:
            if not a.thresholds:
                raise ValidationError("请用 --month YYYY-MM 指定月份", detail="--month is required for the scan")
            th = an.thresholds(app, a.district)
            if a.json:
                out_json({"thresholds": asdict(th), "info": {k: {"min": lo, "max": hi, "zh": zh}
                                                               for k, (lo, hi, zh) in an.THRESHOLD_INFO.items()}})
            else:
                for k, (lo, hi, zh) in an.THRESHOLD_INFO.items():
                    print(f"{k} = {getattr(th, k)}  （{zh}，{lo}–{hi}）")
            return 0
        rep = an.scan(app, a.month, an.thresholds(app, a.district))
        if a.json:
            out_json(rep)
            return 0
        print(f"{rep['month']} 异常线索 {len(rep['anomalies'])} 条")
        for x in rep["anomalies"]:
            print(f"[{x['kind_zh']}] {x['canteen_id'] or ''} {x['detail']}")
        return 0
    finally:
        app.close()
