"""`kiosk staff password ID` (the console's password, never a terminal's) and
`kiosk staff canteen add|remove|list` (whose PIN hashes a canteen's terminals get)."""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from kiosk.cli.main import out_json


def register(sub) -> None:
    staff = sub.choices.get("staff")
    if staff is None:
        return
    ssub = next(x for x in staff._actions if isinstance(x, argparse._SubParsersAction))
    pw = ssub.add_parser("password", help="set a staff member's console password (10+ characters, Argon2id; "
                                          "on a district server also the command line's proof)")
    pw.add_argument("staff_id")
    pw.add_argument("--staff", help="an acting admin, for somebody else (or a first password); without it the "
                                    "person proves it with the current password (KIOSK_STAFF_PASSWORD), or, for "
                                    "the first admin password of the store, the PIN (KIOSK_STAFF_PIN)")
    pw.add_argument("--json", action="store_true")
    pw.set_defaults(func=cmd_password)

    ca = ssub.add_parser("canteen", help="a canteen's staff list: whose PIN hashes its terminals receive")
    cas = ca.add_subparsers(dest="canteen_cmd", required=True)
    for name, helptext in (("add", "put a staff member on a canteen's list"),
                           ("remove", "take a staff member off a canteen's list (gone from its terminals "
                                      "at their next sync)")):
        p = cas.add_parser(name, help=helptext)
        p.add_argument("staff_id")
        p.add_argument("canteen_id", nargs="+")
        p.add_argument("--staff", help="the acting admin (password on a district server: KIOSK_STAFF_PASSWORD)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_canteen_change, change=name)
    cl = cas.add_parser("list", help="the staff lists (of one canteen)")
    cl.add_argument("canteen_id", nargs="?")
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_canteen_list)


def _app():
    from kiosk.services.context import App

    return App()


def _new_password(staff_id: str) -> str:
    from kiosk.errors import ValidationError

    env = os.environ.get("KIOSK_NEW_PASSWORD")
    if env is not None:
        return env.rstrip("\r\n")
    if sys.stdin is None or not sys.stdin.isatty():
        raise ValidationError("请在终端里运行以便输入新密码（脚本可设置环境变量 KIOSK_NEW_PASSWORD）",
                              detail="no terminal to ask the new password and KIOSK_NEW_PASSWORD is not set")
    first = getpass.getpass(f"{staff_id} 的新密码（至少 10 个字符）：")
    if getpass.getpass("再输入一次：") != first:
        raise ValidationError("两次输入的密码不一致", detail="password confirmation differs")
    return first


def cmd_password(a: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import acting_staff, read_password, read_pin
    from kiosk.district.domain import passwords
    from kiosk.errors import ServerOnlyError

    app = _app()
    if app.settings.is_terminal:
        raise ServerOnlyError("密码只能在区服务器上设置，终端不保存也不接收密码",
                              detail="kiosk staff password runs on the district server")
    new = _new_password(a.staff_id)
    passwords.check_rules(new)          # before anybody is asked for a proof
    if a.staff:
        res = passwords.set_password(app, a.staff_id, new, actor=acting_staff(app, a.staff, "staff.manage"))
    elif passwords.has_password(app, a.staff_id):
        res = passwords.set_password(app, a.staff_id, new,
                                     own_proof=read_password(a.staff_id, what="当前密码"))
    else:
        res = passwords.set_password(app, a.staff_id, new, own_pin=read_pin(a.staff_id))
    out_json(res) if a.json else print(f"工作人员 {a.staff_id} 的密码已设置（经办 {res['by']}）")
    return 0


def cmd_canteen_change(a: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import acting_staff
    from kiosk.district.domain import passwords

    app = _app()
    actor = acting_staff(app, a.staff, "staff.manage")
    fn = passwords.add_to_canteen if a.change == "add" else passwords.remove_from_canteen
    res = [fn(app, a.staff_id, c, actor) for c in a.canteen_id]
    if a.json:
        out_json(res)
    else:
        for r in res:
            print(f"{r['staff_id']} {'在' if r['on_list'] else '不在'} {r['canteen_id']} 的工作人员名单上"
                  + ("" if r["changed"] else "（未变）"))
    return 0


def cmd_canteen_list(a: argparse.Namespace) -> int:
    from kiosk.district.domain import passwords

    rows = passwords.canteen_lists(_app(), a.canteen_id)
    if a.json:
        out_json(rows)
    else:
        for r in rows:
            print(f"{r['canteen_id']:10} {r['staff_id']:10} {r['name']:8} {r['role']:10} "
                  f"{'在职' if r['active'] else '已停用'}")
    return 0
