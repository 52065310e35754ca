"""`kiosk offline`: the district's limits on what terminals sell while offline, and the
blocked cards and residents (kiosk.billing.offline, kiosk.services.offline_limits).

    kiosk offline show [--json]                                   (server; on a terminal: its copy)
    kiosk offline set [--per-sale YUAN|none] [--per-day YUAN|none] [--subsidy-hours H] --staff ADM
    kiosk offline block --card NO | --resident ID --reason TEXT --staff ADM
    kiosk offline unblock --card NO | --resident ID [--note TEXT] --staff ADM

Changes are made on the district server by an admin proven as the server's command line
proves people (the password; PIN on a single machine; scripts: KIOSK_STAFF_PASSWORD /
KIOSK_STAFF_PIN), audited, and reach every terminal at its next sync."""
from __future__ import annotations

import argparse

from kiosk.cli.main import out_json


def register(sub) -> None:
    p = sub.add_parser("offline", help="the district's limits on offline sales and the blocked cards/residents")
    ps = p.add_subparsers(dest="offline_cmd", required=True)
    sh = ps.add_parser("show", help="the limits in force and the blocked list")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)
    st = ps.add_parser("set", help="set the limits (admin; what is not given stays)")
    st.add_argument("--per-sale", metavar="YUAN", help="most one meal may take from the balance offline (none: no cap)")
    st.add_argument("--per-day", metavar="YUAN", help="most one resident's balance may pay in a day offline (none: no cap)")
    st.add_argument("--subsidy-hours", metavar="H", help="no subsidy once a terminal is offline longer (default 24)")
    st.add_argument("--note", help="why (kept in the audit log)")
    st.add_argument("--staff", required=True, help="acting admin; the password is asked (scripts: KIOSK_STAFF_PASSWORD)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_set)
    for name, zh in (("block", "put a card (挂失) or a resident on the blocked list"),
                     ("unblock", "take a card or a resident off the blocked list")):
        b = ps.add_parser(name, help=zh)
        who = b.add_mutually_exclusive_group(required=True)
        who.add_argument("--card", metavar="NO")
        who.add_argument("--resident", metavar="ID")
        if name == "block":
            b.add_argument("--reason", required=True, help="e.g. 挂失 (kept with the entry and in the audit log)")
        else:
            b.add_argument("--note")
        b.add_argument("--staff", required=True, help="acting admin; the password is asked")
        b.add_argument("--json", action="store_true")
        b.set_defaults(func=cmd_block, block=name == "block")


def _app(write: bool):
    from kiosk.errors import ServerOnlyError
    from kiosk.services.context import App

    app = App()
    if write and app.settings.is_terminal:
        app.close()
        raise ServerOnlyError("这是终端：离线限额和挂失名单只能在区服务器上设置，终端会在下次同步时收到",
                              detail="run `kiosk offline ...` on the district server")
    return app


def _yuan(fen: int | None) -> str:
    from kiosk.money import fen_to_yuan

    return "不限" if fen is None else f"{fen_to_yuan(fen)} 元"


def _cst(iso: str) -> str:
    from datetime import datetime

    from kiosk.timeutil import to_cst

    return f"{to_cst(datetime.fromisoformat(iso)):%Y-%m-%d %H:%M}"


def _print(d: dict) -> None:
    print(f"离线时余额每餐最多付：{_yuan(d['per_sale_fen'])}")
    print(f"离线时余额每人每天最多付：{_yuan(d['per_day_fen'])}")
    print(f"断网超过 {d['subsidy_offline_s'] / 3600:g} 小时停发补贴")
    if d.get("set_by"):
        print(f"（{d['set_by']} 于 {_cst(d['set_at'])} 设置）")
    print(f"挂失名单 {len(d['blocked'])} 条")
    for b in d["blocked"]:
        kind = "助老卡" if b["kind"] == "card" else "居民"
        print(f"  {kind} {b['value']} {b.get('name') or ''}  {b['reason']}  {b['blocked_by']} {_cst(b['blocked_at'])}")


def cmd_show(a: argparse.Namespace) -> int:
    from kiosk.services.offline_limits import describe

    app = _app(False)
    try:
        d = describe(app)
    finally:
        app.close()
    if a.json:
        out_json(d)
    else:
        _print(d)
    return 0


def cmd_set(a: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import prove
    from kiosk.services import offline_limits as ol

    given = {}
    if a.per_sale is not None:        # every value checked before the password is asked
        given["per_sale_fen"] = ol.check_cap(a.per_sale, "--per-sale 离线每餐限额")
    if a.per_day is not None:
        given["per_day_fen"] = ol.check_cap(a.per_day, "--per-day 离线每天限额")
    if a.subsidy_hours is not None:
        given["subsidy_offline_s"] = ol.check_hours(a.subsidy_hours)
    if not given:
        from kiosk.errors import ValidationError

        raise ValidationError("没有要设置的离线限额（--per-sale、--per-day 或 --subsidy-hours）", detail="nothing to set")
    app = _app(True)
    try:
        actor = prove(app, a.staff, permission="offline.limits")
        d = ol.set_limits(app, actor, note=a.note, **given)
    finally:
        app.close()
    if a.json:
        out_json(d)
    else:
        _print(d)
    return 0


def cmd_block(a: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import prove
    from kiosk.services import offline_limits as ol

    kind, value = ("card", a.card) if a.card is not None else ("resident", a.resident)
    app = _app(True)
    try:
        actor = prove(app, a.staff, permission="offline.limits")
        if a.block:
            res = ol.block(app, actor, kind, value, a.reason)
        else:
            res = ol.unblock(app, actor, kind, value, a.note)
    finally:
        app.close()
    if a.json:
        out_json(res)
    else:
        what = "助老卡" if kind == "card" else "居民"
        print(f"{what} {res['value']} {'已列入挂失名单' if res['blocked'] else '已移出挂失名单'}，终端下次同步时生效")
    return 0
