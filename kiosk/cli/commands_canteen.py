"""`kiosk canteen add ID --name N` and `kiosk canteen list`: the district's canteens,
made by an admin on the server (a menu for a canteen imports before any terminal
exists). `kiosk canteen set` (this terminal's canteen) is in commands_billing."""
from __future__ import annotations

import argparse

from kiosk.cli.main import out_json


def _canteen_subparsers(sub) -> argparse._SubParsersAction:
    cn = sub.choices["canteen"]
    for action in cn._actions:   # argparse keeps a parser's subcommands in this action
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `canteen` command has no subcommands")


def register(sub) -> None:
    cns = _canteen_subparsers(sub)
    add = cns.add_parser("add", help="a new canteen of the district (admin; server)")
    add.add_argument("canteen_id", metavar="ID", help="letters, digits, _ . - (at most 64)")
    add.add_argument("--name", required=True)
    add.add_argument("--district")
    add.add_argument("--staff", help="acting admin (not needed while the store has no staff); PIN as for the others")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_canteen_add)
    ls = cns.add_parser("list", help="the district's canteens, their terminals and menu days")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_canteen_list)


def _app():
    from kiosk.services.context import App

    return App()


def cmd_canteen_add(a) -> int:
    from kiosk.cli.staffpin import acting_staff
    from kiosk.services.canteen import add_canteen

    app = _app()
    who = acting_staff(app, a.staff, "canteen.configure", setup_ok=True)
    res = add_canteen(app, a.canteen_id, name=a.name, district=a.district, actor=who.staff_id if who else "system")
    if a.json:
        out_json(res)
    else:
        print(f"已新增食堂 {res['id']}（{res['name']}）：现在可以导入它的菜单，并用 kiosk server terminal add "
              f"{res['id']} 为它添加终端")
    return 0


def cmd_canteen_list(a) -> int:
    from kiosk.services.canteen import list_canteens

    rows = list_canteens(_app())
    if a.json:
        out_json(rows)
    else:
        for c in rows:
            print(f"{c['id']}  {c['name']}  {c['district'] or ''}  终端 {c['terminals']} 台，菜单 {c['menu_days']} 天")
    return 0
