"""Residents, menus, policies, checkout, accounts and staff."""
from __future__ import annotations

import sys
from pathlib import Path

from kiosk.cli.main import out_json
from kiosk.cli.staffpin import acting_staff
from kiosk.money import fen_to_yuan


def register(sub) -> None:
    r = sub.add_parser("residents", help="the roster")
    rs = r.add_subparsers(dest="residents_cmd", required=True)
    ri = rs.add_parser("import", help="import a roster (CSV or .xlsx): blank cells keep, 清除 clears")
    ri.add_argument("file", type=Path)
    ri.add_argument("--photos", type=Path, help="folder with the photos the roster names (rows with 人脸授权 是 "
                    "are enrolled; needs --staff even while the store has no staff)")
    ri.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    ri.add_argument("--skip-invalid", action="store_true", help="import the good rows, leave the bad ones out")
    ri.add_argument("--staff", help="acting admin; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    ri.add_argument("--json", action="store_true")
    ri.set_defaults(func=cmd_residents_import)
    rw = rs.add_parser("show")
    rw.add_argument("resident_id")
    rw.add_argument("--at")
    rw.add_argument("--json", action="store_true")
    rw.set_defaults(func=cmd_residents_show)
    re_ = rs.add_parser("erase", help="erase a resident's face data (templates, crops, index)")
    re_.add_argument("resident_id")
    re_.add_argument("--staff", help="acting staff id; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    re_.add_argument("--json", action="store_true")
    re_.set_defaults(func=cmd_residents_erase)

    m = sub.add_parser("menu")
    ms = m.add_subparsers(dest="menu_cmd", required=True)
    mi = ms.add_parser("import", help="import a menu (CSV or .xlsx); rows go to their 食堂 column's canteen")
    mi.add_argument("file", type=Path)
    mi.add_argument("--canteen", help="the canteen of rows with an empty 食堂 (default: every canteen)")
    mi.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    mi.add_argument("--skip-invalid", action="store_true", help="import the good rows, leave the bad ones out")
    mi.add_argument("--staff", help="acting admin; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    mi.add_argument("--json", action="store_true")
    mi.set_defaults(func=cmd_menu_import)

    p = sub.add_parser("policy")
    ps = p.add_subparsers(dest="policy_cmd", required=True)
    pi = ps.add_parser("import", help="import a subsidy policy (YAML or JSON)")
    pi.add_argument("file", type=Path)
    pi.add_argument("--replace", action="store_true",
                    help="the new tiers replace the overlapping tiers of the policy in force (refused otherwise)")
    pi.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    pi.add_argument("--staff", help="acting admin; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(func=cmd_policy_import)

    c = sub.add_parser("checkout", help="price and settle a meal")
    c.add_argument("--resident", required=True)
    c.add_argument("--dish", action="append", required=True)
    c.add_argument("--at", help="time of the meal, e.g. 2026-11-23T12:05 (China Standard Time)")
    c.add_argument("--meal", help="早餐/午餐/晚餐; default from the time")
    c.add_argument("--pay", choices=["cash", "balance", "card"], default="cash")
    c.add_argument("--idempotency-key", help="settle once per key (a retry returns the first receipt)")
    c.add_argument("--dry-run", action="store_true", help="quote only, record nothing")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_checkout)

    st = sub.add_parser("staff", help="staff members, roles and PINs")
    sts = st.add_subparsers(dest="staff_cmd", required=True)
    sa = sts.add_parser("add", help="add or change a staff member (the first one: an admin, no --staff)")
    sa.add_argument("staff_id")
    sa.add_argument("--name", required=True)
    sa.add_argument("--role", choices=["staff", "supervisor", "admin"], required=True)
    sa.add_argument("--pin", help="the new member's PIN (asked twice when left out)")
    sa.add_argument("--staff", help="the acting admin; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    sa.add_argument("--json", action="store_true")
    sa.set_defaults(func=cmd_staff_add)
    sd = sts.add_parser("disable", help="deactivate a staff member")
    sd.add_argument("staff_id")
    sd.add_argument("--staff", help="acting staff id; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    sd.add_argument("--json", action="store_true")
    sd.set_defaults(func=cmd_staff_disable)
    sl = sts.add_parser("list")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=cmd_staff_list)

    o = sub.add_parser("orders")
    os_ = o.add_subparsers(dest="orders_cmd", required=True)
    ov = os_.add_parser("void")
    ov.add_argument("order_id")
    ov.add_argument("--reason", required=True)
    ov.add_argument("--staff", help="acting staff id; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    ov.add_argument("--json", action="store_true")
    ov.set_defaults(func=cmd_orders_void)

    a = sub.add_parser("accounts")
    as_ = a.add_subparsers(dest="accounts_cmd", required=True)
    at = as_.add_parser("topup")
    at.add_argument("resident_id")
    at.add_argument("amount_yuan")
    at.add_argument("--payer", help="who paid, e.g. 子女 李明")
    at.add_argument("--staff", help="acting staff id; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    at.add_argument("--json", action="store_true")
    at.set_defaults(func=cmd_topup)
    ab = as_.add_parser("balance")
    ab.add_argument("resident_id")
    ab.add_argument("--json", action="store_true")
    ab.set_defaults(func=cmd_balance)

    rp = sub.add_parser("report", help="reports")
    rps = rp.add_subparsers(dest="report_cmd", required=True)
    rm = rps.add_parser("monthly", help="the monthly subsidy reimbursement report")
    rm.add_argument("--month", required=True, help="YYYY-MM")
    rm.add_argument("--out", type=Path, help=".xlsx or .csv")
    rm.add_argument("--staff", default="system")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(func=cmd_report_monthly)

    cn = sub.add_parser("canteen", help="this terminal's canteen")
    cns = cn.add_subparsers(dest="canteen_cmd", required=True)
    cs = cns.add_parser("set", help="name, district and meal windows (HH:MM-HH:MM)")
    cs.add_argument("--name")
    cs.add_argument("--district")
    for meal, opt in (("早餐", "--breakfast"), ("午餐", "--lunch"), ("晚餐", "--dinner")):
        cs.add_argument(opt, metavar="HH:MM-HH:MM", help=f"{meal} window")
    cs.add_argument("--staff", help="acting admin (not needed while the store has no staff); PIN as for the others")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_canteen_set)

    rc = sub.add_parser("recommend")
    rc.add_argument("--resident", required=True)
    rc.add_argument("--at")
    rc.add_argument("--meal")
    rc.add_argument("--json", action="store_true")
    rc.set_defaults(func=cmd_recommend)


def _app():
    from kiosk.services.context import App

    return App()


def _at(text: str | None):
    if not text:
        return None
    from kiosk.errors import ValidationError
    from kiosk.timeutil import parse_cst

    try:
        return parse_cst(text)
    except ValueError:
        raise ValidationError(f"时间格式不对：{text}（例：2026-11-23T12:05）", detail=f"bad --at {text!r}") from None


ACTION_ZH = {"add": "新增", "change": "修改", "unchanged": "不变"}
SHOWN_ROWS = 200      # rows listed one by one in the text output (all of them in --json)


def _plan_json(plan, rep=None, **extra) -> dict:
    """The import's JSON: the report's lists (``created``, ``updated``, ``unchanged``,
    ``problems`` ...) and the structured plan (``plan``: ``add``, ``change``,
    ``unchanged``, ``problems``, ``conflicts``, ``counts``)."""
    from kiosk.services.import_plan import report_of

    rep = rep or report_of(plan, dry_run=True)
    d = rep.to_json()
    d.update({"plan": plan.to_json(), "counts": plan.counts(), "conflicts": [c.to_json() for c in plan.conflicts],
              "replace": plan.replace})
    d.update(extra)
    return d


def _print_plan(plan, rep, *, dry_run: bool, state: str = "") -> None:
    """The plan as text: counts, each row to add or change, bad rows (file, row, column,
    reason) and overlapping tiers on stderr."""
    for w in plan.warnings:
        print(f"提示：{w}", file=sys.stderr)
    name = plan.file
    for p in plan.problems:
        print(p.text(name), file=sys.stderr)
    for c in plan.conflicts:
        print(f"{name}：{c.text()}", file=sys.stderr)
    state = "（预览，未写入）" if dry_run else state
    print(f"{name}：新增 {len(plan.add)}，修改 {len(plan.change)}，不变 {len(plan.unchanged)}，"
          f"有错误的行 {len(plan.bad_rows)}{state}")
    for action in ("add", "change"):
        rows = plan.by_action(action)
        for p in rows[:SHOWN_ROWS]:
            where = f"第{p.row}行 " if p.row else ""
            what = "；".join(f"{k} {old or '（空）'} → {new or '（空）'}" for k, (old, new) in p.changes.items())
            photos = f"（照片 {len(p.photos)} 张）" if p.photos else ""
            print(f"  {ACTION_ZH[action]} {where}{p.key} {p.label}{'：' + what if what and action == 'change' else ''}"
                  f"{photos}")
        if len(rows) > SHOWN_ROWS:
            print(f"  …… 另有 {len(rows) - SHOWN_ROWS} 行{ACTION_ZH[action]}（--json 列出全部）")
    for ph in rep.photos if rep is not None else []:
        print(f"  照片 第{ph['row']}行 {ph['resident_id']}: {ph['status']} {ph.get('message', '')}")


def _run_import(a, kind: str) -> int:
    """Plan the file (kiosk.services.import_plan, as the console does), show the plan and
    stop there for ``--dry-run``; else refuse overlapping tiers without ``--replace``
    (exit 2) and bad rows without ``--skip-invalid`` (exit 1, nothing written), then ask
    the acting admin's PIN and apply exactly the plan."""
    from kiosk.services import import_plan as ip
    from kiosk.timeutil import now_cst

    app = _app()
    ip.refuse_on_terminal(app)
    if kind == "roster":
        plan = ip.plan_roster(app, a.file, photos_dir=a.photos)
    elif kind == "menu":
        plan = ip.plan_menu(app, a.file, a.canteen)
    else:
        plan = ip.plan_policy(app, a.file, replace=a.replace, today=now_cst().date())
    skip = bool(getattr(a, "skip_invalid", False))
    refused = bool(plan.conflicts and not plan.replace)
    if a.dry_run:
        out_json(_plan_json(plan)) if a.json else _print_plan(plan, None, dry_run=True)
        if refused and not a.json:
            print("政策档次与现行政策重叠：导入会被拒绝；确需取代，请加 --replace", file=sys.stderr)
        return 2 if refused else 1 if plan.problems else 0
    if refused:
        err = ip.conflict_error(plan)
        if a.json:
            out_json(_plan_json(plan, ip.report_of(plan, dry_run=False), error=err.user_message, detail=err.detail,
                                type=type(err).__name__))
        else:
            _print_plan(plan, None, dry_run=False, state="（被拒绝，未写入）")
            print(f"错误：{err.user_message}", file=sys.stderr)
        return 2

    def not_imported() -> int:
        if a.json:
            out_json(_plan_json(plan, ip.report_of(plan, dry_run=False)))
        else:
            _print_plan(plan, None, dry_run=False, state="（未写入）")
            print("文件有错误，未导入任何数据。改正后重新导入，或加 --skip-invalid 只导入正确的行。", file=sys.stderr)
        return 1

    if plan.problems and not skip:
        return not_imported()
    staff_id = _importer(app, a, faces=bool(kind == "roster" and a.photos is not None))
    ip.prepare_photos(app, plan)       # every photo decoded and embedded before the first write
    if plan.problems and not skip:
        return not_imported()
    result = ip.APPLIERS[kind](app, plan, staff_id or "system", skip_invalid=skip, via="cli")
    rep = ip.report_of(plan, dry_run=False, result=result)
    out_json(_plan_json(plan, rep)) if a.json else _print_plan(plan, rep, dry_run=False)
    return 0


def _importer(app, a, *, faces: bool = False) -> str | None:
    """Who imports: an admin proven by PIN. A store without any staff yet is being set
    up (no one to name), except for a roster with photos: that records face consent and
    enrols faces, which a named staff member always does."""
    actor = acting_staff(app, a.staff, "data.import", setup_ok=not faces)
    return actor.staff_id if actor else None


def cmd_residents_import(a) -> int:
    return _run_import(a, "roster")


def cmd_menu_import(a) -> int:
    return _run_import(a, "menu")


def cmd_policy_import(a) -> int:
    return _run_import(a, "policy")


def cmd_residents_show(a) -> int:
    info = _app().residents.show(a.resident_id, at=_at(a.at))
    if a.json:
        out_json(info)
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return 0


def cmd_residents_erase(a) -> int:
    app = _app()
    res = app.residents.erase_faces(a.resident_id, acting_staff(app, a.staff, "face.erase"))
    out_json(res) if a.json else print(f"{a.resident_id}: 已删除 {res['templates_removed']} 个人脸模板")
    return 0


def cmd_checkout(a) -> int:
    from kiosk.money import fen_to_yuan

    app = _app()
    if a.dry_run:
        qr = app.billing.quote(a.resident, a.dish, at=_at(a.at), meal=a.meal)
        d = qr.to_json()
        d["order_id"] = None
        d["dry_run"] = True
    else:
        rec = app.billing.settle(a.resident, a.dish, pay=a.pay, at=_at(a.at), meal=a.meal,
                                 idempotency_key=a.idempotency_key)
        d = rec.to_json()
    if a.json:
        out_json(d)
    else:
        print(f"订单 {d['order_id'] or '（预览）'}  {d['meal']}  合计 {fen_to_yuan(d['total_fen'])} − 补贴 "
              f"{fen_to_yuan(d['subsidy_fen'])} = 应付 {fen_to_yuan(d['to_pay_fen'])} 元  （{d['reason']}）")
    return 0


def cmd_staff_add(a) -> int:
    import getpass

    from kiosk.errors import ValidationError

    app = _app()
    # the first staff member (an admin) needs nobody; after that an admin acts
    actor = acting_staff(app, a.staff, "staff.manage") if a.staff else None
    pin = a.pin
    if pin is None:
        if not sys.stdin.isatty():
            raise ValidationError("请用 --pin 给出新工作人员的 PIN", detail="--pin missing and no terminal to ask")
        pin = getpass.getpass(f"{a.staff_id} 的新 PIN：")
        if getpass.getpass("再输入一次：") != pin:
            raise ValidationError("两次输入的 PIN 不一致", detail="PIN confirmation differs")
    res = app.residents.add_staff(a.staff_id, a.name, a.role, pin, actor=actor)
    out_json(res) if a.json else print(f"工作人员 {res['staff_id']}（{res['role']}）已保存")
    return 0


def cmd_staff_disable(a) -> int:
    app = _app()
    res = app.auth.deactivate(a.staff_id, actor=acting_staff(app, a.staff, "staff.manage"))
    out_json(res) if a.json else print(f"工作人员 {a.staff_id} 已停用")
    return 0


def cmd_staff_list(a) -> int:
    rows = _app().auth.list_staff()
    if a.json:
        out_json(rows)
    else:
        for r in rows:
            print(f"{r['staff_id']:10} {r['name']:8} {r['role']:10} {'在职' if r['active'] else '已停用'}")
    return 0


def cmd_orders_void(a) -> int:
    app = _app()
    res = app.billing.void(a.order_id, a.reason, acting_staff(app, a.staff, "order.void"))
    out_json(res) if a.json else print(f"订单 {a.order_id} 已作废，退款 {res['refund_fen']} 分（{res['refund_to']}）")
    return 0


def cmd_topup(a) -> int:
    from kiosk.errors import ValidationError
    from kiosk.money import fen_to_yuan, yuan_to_fen

    try:
        fen = yuan_to_fen(a.amount_yuan)
    except ValueError as exc:
        raise ValidationError(f"金额「{a.amount_yuan}」无效（元，最多两位小数）", detail=str(exc)) from None
    app = _app()
    res = app.billing.topup(a.resident_id, fen, payer=a.payer, actor=acting_staff(app, a.staff, "account.topup"))
    out_json(res) if a.json else print(f"{a.resident_id} 充值 {fen_to_yuan(fen)} 元，余额 {fen_to_yuan(res['balance_fen'])} 元")
    return 0


def cmd_balance(a) -> int:
    fen = _app().billing.balance(a.resident_id)
    out_json({"resident_id": a.resident_id, "balance_fen": fen}) if a.json else print(fen)
    return 0


def cmd_recommend(a) -> int:
    res = _app().billing.recommend(a.resident, at=_at(a.at), meal=a.meal)
    if a.json:
        out_json(res)
    else:
        for d in res["dishes"]:
            print(f"{d['name']} {fen_to_yuan(d['price_fen'])}元 — {d['reason']}")
        print(f"补贴 {res['subsidy_fen']} 分，应付 {res['to_pay_fen']} 分")
    return 0


def cmd_canteen_set(a) -> int:
    from kiosk.errors import ValidationError
    from kiosk.services.canteen import configure_canteen

    windows = {}
    for meal, val in (("早餐", a.breakfast), ("午餐", a.lunch), ("晚餐", a.dinner)):
        if val:
            parts = val.split("-")
            if len(parts) != 2:
                raise ValidationError(f"{meal}时间应写成 HH:MM-HH:MM，不是 {val}", detail=f"bad window {val!r}")
            windows[meal] = parts
    if windows:
        from kiosk.billing.meals import DEFAULT_WINDOWS
        windows = {**{k: list(v) for k, v in DEFAULT_WINDOWS.items()}, **windows}
    app = _app()
    who = acting_staff(app, a.staff, "canteen.configure", setup_ok=True)
    res = configure_canteen(app, name=a.name, district=a.district, windows=windows or None,
                            actor=who.staff_id if who else "system")
    out_json(res) if a.json else print(res)
    return 0


def cmd_report_monthly(a) -> int:
    from kiosk.money import fen_to_yuan
    from kiosk.services.reports import monthly_subsidy, write_report

    app = _app()
    rep = monthly_subsidy(app, a.month)
    if a.out:
        write_report(app, rep, a.out, a.staff)
    if a.json:
        out_json(rep.to_json())
    else:
        print(f"{rep.month}：就餐 {rep.meals} 次，补贴 {rep.subsidized_meals} 次，补贴合计 {fen_to_yuan(rep.subsidy_fen)} 元"
              + (f"，追回 {fen_to_yuan(rep.charged_back_fen)} 元，应报销 {fen_to_yuan(rep.net_subsidy_fen)} 元"
                 if rep.charged_back_fen else "")
              + (f"，已写入 {a.out}" if a.out else ""))
    return 0
